import { css } from "lit";

/** One dark theme for control rooms: low glare, high contrast for what needs attention. */
export const shared = css`
  :host {
    --bg: #0e1116;
    --panel: #161b22;
    --panel-2: #1d242e;
    --line: #2d3643;
    --text: #d9dee7;
    --muted: #8b96a8;
    --accent: #4cc2ff;
    --ok: #3fb950;
    --warn: #d29922;
    --bad: #f85149;
    --alert: #ff6b4a;
    display: block;
    color: var(--text);
    box-sizing: border-box;
  }
  *,
  *::before,
  *::after {
    box-sizing: inherit;
  }
  h1,
  h2,
  h3 {
    margin: 0 0 0.5rem;
    font-weight: 600;
  }
  h2 {
    font-size: 1.15rem;
  }
  h3 {
    font-size: 1rem;
  }
  button,
  input,
  select,
  textarea {
    font: inherit;
    color: var(--text);
    background: var(--panel-2);
    border: 1px solid var(--line);
    border-radius: 6px;
    padding: 0.35rem 0.6rem;
  }
  button {
    cursor: pointer;
  }
  button:hover:not(:disabled) {
    border-color: var(--accent);
  }
  button:disabled {
    opacity: 0.5;
    cursor: default;
  }
  button.primary {
    background: #1f6feb;
    border-color: #1f6feb;
    color: #fff;
  }
  button.danger {
    border-color: #6e2a27;
    color: #ffb4ae;
  }
  :focus-visible {
    outline: 2px solid var(--accent);
    outline-offset: 2px;
  }
  label {
    color: var(--muted);
    font-size: 0.85rem;
  }
  .panel {
    background: var(--panel);
    border: 1px solid var(--line);
    border-radius: 8px;
    padding: 0.75rem;
  }
  .row {
    display: flex;
    gap: 0.5rem;
    align-items: center;
    flex-wrap: wrap;
  }
  .muted {
    color: var(--muted);
  }
  .error {
    color: var(--bad);
  }
  .ok {
    color: var(--ok);
  }
  .crop {
    width: 96px;
    height: 96px;
    border-radius: 6px;
    background: #000;
    object-fit: cover;
    display: block;
  }
  .grid {
    display: grid;
    gap: 0.75rem;
    grid-template-columns: repeat(auto-fill, minmax(280px, 1fr));
  }
  .tag {
    display: inline-block;
    padding: 0 0.4rem;
    border-radius: 999px;
    border: 1px solid var(--line);
    font-size: 0.8rem;
    color: var(--muted);
  }
  table {
    border-collapse: collapse;
    width: 100%;
  }
  th,
  td {
    text-align: left;
    padding: 0.3rem 0.5rem;
    border-bottom: 1px solid var(--line);
    vertical-align: top;
  }
  th {
    color: var(--muted);
    font-weight: 500;
  }
  .sr-only {
    position: absolute;
    width: 1px;
    height: 1px;
    overflow: hidden;
    clip: rect(0 0 0 0);
    white-space: nowrap;
  }
`;

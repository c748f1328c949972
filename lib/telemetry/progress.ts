import cliProgress from "cli-progress";

export interface Progress {
  tick(n?: number): void;
  done(): void;
}

/** A bar on a TTY; otherwise a plain line at every 10% so logs and CI output stay readable. */
export function progress(
  label: string,
  total: number,
  stream: NodeJS.WriteStream = process.stderr,
): Progress {
  if (stream.isTTY) {
    const bar = new cliProgress.SingleBar(
      {
        format: `${label} [{bar}] {percentage}% {value}/{total} eta {eta_formatted}`,
        stream,
        hideCursor: true,
      },
      cliProgress.Presets.shades_classic,
    );
    bar.start(total, 0);
    return { tick: (n = 1) => bar.increment(n), done: () => bar.stop() };
  }
  let count = 0;
  let nextReport = 0.1;
  const started = Date.now();
  return {
    tick(n = 1) {
      count += n;
      if (total > 0 && count / total >= nextReport) {
        stream.write(
          `${label}: ${count}/${total} (${Math.round((100 * count) / total)}%, ${((Date.now() - started) / 1000).toFixed(0)} s)\n`,
        );
        while (count / total >= nextReport) nextReport += 0.1;
      }
    },
    done() {
      if (count < total) stream.write(`${label}: ${count}/${total}\n`);
    },
  };
}

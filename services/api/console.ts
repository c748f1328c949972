import { readdirSync, readFileSync, statSync } from "node:fs";
import path from "node:path";
import type { FastifyReply, FastifyRequest } from "fastify";
import { z } from "zod";
import { ROLES } from "../../lib/store/key-store.ts";
import { checkoutRoot } from "../../lib/util/checkout.ts";
import type { ApiContext, ZodApp } from "./context.ts";
import { errors } from "./routes/common.ts";

/**
 * The web console (web/, built by Vite into dist/console) served from the API's own origin, so the browser
 * talks to the documented API with no CORS and nothing fetched from elsewhere. Files are served only from a
 * manifest made by listing the build folder: a request names an entry of that list or nothing, so no path
 * can reach outside it. Every other GET that wants HTML gets index.html (the console routes by #fragment, so
 * this only matters for bookmarks of `/` and stray paths); API paths keep their JSON 404.
 */

const TYPES: Record<string, string> = {
  ".html": "text/html; charset=utf-8",
  ".js": "text/javascript; charset=utf-8",
  ".mjs": "text/javascript; charset=utf-8",
  ".css": "text/css; charset=utf-8",
  ".json": "application/json; charset=utf-8",
  ".map": "application/json; charset=utf-8",
  ".svg": "image/svg+xml",
  ".png": "image/png",
  ".jpg": "image/jpeg",
  ".ico": "image/x-icon",
  ".webp": "image/webp",
  ".woff2": "font/woff2",
  ".txt": "text/plain; charset=utf-8",
  ".wav": "audio/wav",
};

/**
 * What the console's page may do: its own scripts and styles, the API on the same origin, crops shown from
 * blob: URLs (they are fetched with the key, which an <img src> cannot send).
 */
const CSP = [
  "default-src 'self'",
  "script-src 'self'",
  "style-src 'self' 'unsafe-inline'",
  "img-src 'self' blob: data:",
  "media-src 'self' blob: data:",
  "connect-src 'self'",
  "object-src 'none'",
  "base-uri 'none'",
  "form-action 'none'",
  "frame-ancestors 'none'",
].join("; ");

/** API and service paths never fall back to the page: a wrong API URL must stay a JSON 404. */
const NOT_THE_CONSOLE = /^\/(v\d+|healthz|readyz|metrics|openapi\.json)(\/|$)/;

interface Entry {
  file: string;
  type: string;
  /** Vite names files under assets/ by content hash: they never change, so browsers may keep them. */
  immutable: boolean;
}

/** The checkout's dist/console (Vite's build), the same folder from source and from the compiled build. */
export function defaultConsoleDir(): string {
  return path.join(checkoutRoot(), "dist/console");
}

function listFiles(root: string): Map<string, Entry> {
  const files = new Map<string, Entry>();
  const walk = (dir: string, prefix: string) => {
    let names: string[];
    try {
      names = readdirSync(dir);
    } catch {
      return;
    }
    for (const name of names) {
      if (name.startsWith(".")) continue;
      const full = path.join(dir, name);
      const stat = statSync(full, { throwIfNoEntry: false });
      if (!stat) continue;
      if (stat.isDirectory()) walk(full, `${prefix}${name}/`);
      else if (stat.isFile()) {
        const type = TYPES[path.extname(name).toLowerCase()];
        if (type)
          files.set(`/${prefix}${name}`, { file: full, type, immutable: prefix.startsWith("assets/") });
      }
    }
  };
  walk(root, "");
  return files;
}

/** The console's files, listed again when one is asked for that the list lacks (a rebuild while running). */
class ConsoleFiles {
  private files = new Map<string, Entry>();
  private listedAt = 0;

  constructor(readonly root: string) {
    this.refresh();
  }

  private refresh() {
    this.files = listFiles(this.root);
    this.listedAt = Date.now();
  }

  get(urlPath: string): Entry | undefined {
    const hit = this.files.get(urlPath);
    if (hit || Date.now() - this.listedAt < 2000) return hit;
    this.refresh();
    return this.files.get(urlPath);
  }
}

const wantsHtml = (request: FastifyRequest) => /text\/html|\*\/\*/.test(request.headers.accept ?? "");

function send(reply: FastifyReply, entry: Entry, html: boolean) {
  reply
    .type(entry.type)
    .header("x-content-type-options", "nosniff")
    .header("referrer-policy", "no-referrer")
    .header("cache-control", entry.immutable ? "public, max-age=31536000, immutable" : "no-cache");
  if (html) reply.header("content-security-policy", CSP).header("x-frame-options", "DENY");
  return reply.send(readFileSync(entry.file));
}

/** Who the key is: what the console asks first, to show only what the role may do. */
export const Me = z.object({ keyId: z.string(), name: z.string(), role: z.enum(ROLES) }).meta({ id: "Me" });

export function consoleRoutes(app: ZodApp, ctx: ApiContext) {
  app.get(
    "/v1/me",
    {
      config: { role: "viewer" },
      schema: {
        summary: "The API key making the request: its id, name and role",
        tags: ["keys"],
        response: { 200: Me, ...errors },
      },
    },
    async (request) => {
      const p = request.principal!;
      return { keyId: p.keyId, name: p.name, role: p.role };
    },
  );

  const settings = ctx.config.api.console;
  if (!settings.enabled) return;
  const files = new ConsoleFiles(path.resolve(settings.dir ?? defaultConsoleDir()));

  const page = (request: FastifyRequest, reply: FastifyReply) => {
    const index = files.get("/index.html");
    if (index) return send(reply, index, true);
    return reply
      .code(404)
      .type("text/plain; charset=utf-8")
      .send(
        `The web console is not built in ${files.root}: run \`npm run build\` (or \`npm run build:console\`).\n` +
          `The API itself is at ${request.protocol}://${request.host}/v1 (see /openapi.json).\n`,
      );
  };

  app.get("/", { schema: { hide: true } }, page);
  app.get("/*", { schema: { hide: true } }, async (request, reply) => {
    const urlPath = decodeURIComponentSafe(request.url.split("?")[0]!);
    if (urlPath === undefined || NOT_THE_CONSOLE.test(urlPath)) return reply.callNotFound();
    const entry = files.get(urlPath);
    if (entry) return send(reply, entry, entry.type.startsWith("text/html"));
    // A missing hashed asset is a 404, never the page: a stale tab must not run HTML as a script.
    if (urlPath.startsWith("/assets/") || !wantsHtml(request)) return reply.callNotFound();
    return page(request, reply);
  });
}

function decodeURIComponentSafe(s: string): string | undefined {
  try {
    return decodeURIComponent(s);
  } catch {
    return undefined;
  }
}

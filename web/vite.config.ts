import { fileURLToPath } from "node:url";
import { defineConfig } from "vite";

/**
 * The console is built once, at build time, into dist/console, which the API serves (services/api/console.ts).
 * Everything it runs is in the bundle: no CDN, no fonts or scripts fetched at run time.
 */
export default defineConfig({
  root: fileURLToPath(new URL(".", import.meta.url)),
  base: "/",
  publicDir: "public",
  build: {
    outDir: fileURLToPath(new URL("../dist/console", import.meta.url)),
    emptyOutDir: true,
    target: "es2022",
    // Source maps would double what the API serves; the TypeScript is in the repository.
    sourcemap: false,
    reportCompressedSize: true,
    assetsInlineLimit: 0,
  },
  server: {
    // `npx vite web` during development: API calls go to a running `vigil run --api 127.0.0.1:8080`.
    proxy: { "/v1": "http://127.0.0.1:8080" },
  },
});

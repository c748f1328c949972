#!/usr/bin/env node
// The product is TypeScript run through tsx's loader, so `npx vigil` works from a checkout with no build step.
import { register } from "tsx/esm/api";
register();
await import("../cli/main.ts");

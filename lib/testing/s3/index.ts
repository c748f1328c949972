export { S3Server, S3S_FS, s3UnavailableReason, type S3ServerOptions } from "./server.ts";
export { freePort } from "../process.ts";

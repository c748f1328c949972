export { S3Server, S3S_FS, freePort, s3UnavailableReason, type S3ServerOptions } from "./server.ts";

import {
  DeleteObjectCommand,
  DeleteObjectsCommand,
  GetObjectCommand,
  HeadBucketCommand,
  ListObjectsV2Command,
  PutObjectCommand,
  S3Client,
} from "@aws-sdk/client-s3";
import { isTransient, TransientError } from "../runtime/errors.ts";
import { checkKey, CropStoreError, eachLimited, type CropStore } from "./crop-store.ts";

export interface S3CropStoreOptions {
  bucket: string;
  /** Prepended to every key as given (`vigil/` → `vigil/sightings/…`), so deployments can share a bucket. */
  prefix?: string;
  /** An S3-compatible server (MinIO, Ceph, s3s…); AWS S3 when unset. */
  endpoint?: string;
  region?: string;
  /** The bucket in the URL's path rather than its host name, as most S3-compatible servers need. */
  forcePathStyle?: boolean;
  /** Unset: the AWS SDK's default chain (AWS_* variables, web identity in EKS, an instance role). */
  credentials?: { accessKeyId: string; secretAccessKey: string; sessionToken?: string };
  /** One request's bound, so a frozen server fails the call (transiently) instead of hanging the stage. */
  requestTimeoutMs?: number;
  /** Tries per request, the SDK's backoff between them. */
  maxAttempts?: number;
}

/** S3 error codes that mean the credentials (or what they may do) are wrong: waiting will not help. */
const REFUSED = new Set([
  "SignatureDoesNotMatch",
  "InvalidAccessKeyId",
  "AccessDenied",
  "ExpiredToken",
  "InvalidToken",
  "TokenRefreshRequired",
  "Forbidden",
]);
/** Codes of a server that is overloaded or failing for a moment. */
const BUSY = new Set([
  "TimeoutError",
  "RequestTimeout",
  "RequestTimeoutException",
  "ServiceUnavailable",
  "SlowDown",
  "InternalError",
  "Throttling",
  "ThrottlingException",
]);
/** DeleteObjects takes at most this many keys. */
const DELETE_BATCH = 1000;

interface SdkError {
  name?: string;
  message?: string;
  Code?: string;
  $metadata?: { httpStatusCode?: number };
  $retryable?: unknown;
}

/**
 * Crops as objects in an S3-compatible bucket, for the scale-out deployment: every match replica writes and the
 * API reads the same bucket. Keys are `prefix + cropKey(...)`, so a replay overwrites its object.
 */
export class S3CropStore implements CropStore {
  readonly location: string;
  private readonly client: S3Client;
  private readonly bucket: string;
  private readonly prefix: string;
  /** Some S3-compatible servers have no DeleteObjects; learnt on the first refusal. */
  private batchDelete = true;

  constructor(options: S3CropStoreOptions) {
    this.bucket = options.bucket;
    this.prefix = options.prefix ?? "";
    this.location = `s3://${this.bucket}/${this.prefix}${options.endpoint ? ` at ${options.endpoint}` : ""}`;
    // The SDK warns on Node 20 that its releases from 2027 will need Node 22: package.json pins a release with
    // "~", so that cannot arrive unannounced, and the warning would only clutter every process's output.
    process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= "true";
    this.client = new S3Client({
      region: options.region ?? "us-east-1",
      ...(options.endpoint ? { endpoint: options.endpoint } : {}),
      forcePathStyle: options.forcePathStyle ?? false,
      ...(options.credentials ? { credentials: options.credentials } : {}),
      maxAttempts: options.maxAttempts ?? 3,
      requestHandler: {
        connectionTimeout: 3_000,
        requestTimeout: options.requestTimeoutMs ?? 10_000,
        // Without it the SDK only logs a warning past the timeout and the request waits on forever.
        throwOnRequestTimeout: true,
      },
      // Checksums only where S3 requires them: S3-compatible servers vary in the newer checksum headers they know.
      requestChecksumCalculation: "WHEN_REQUIRED",
      responseChecksumValidation: "WHEN_REQUIRED",
    });
  }

  private key(key: string) {
    return this.prefix + checkKey(key);
  }

  /** The SDK's error as a transient one (the store is away or busy) or a `CropStoreError` that says what is wrong. */
  private fail(err: unknown, action: string): Error {
    const e = err as SdkError;
    const code = e.Code ?? e.name ?? "Error";
    const status = e.$metadata?.httpStatusCode;
    // The SDK says "UnknownError" when an error answer has no message it can read (HEAD answers have no body).
    const message = e.message && e.message !== "UnknownError" && e.message !== code ? `: ${e.message}` : "";
    const detail = `${code}${status ? ` (HTTP ${status})` : ""}${message}`;
    if (REFUSED.has(code) || status === 403)
      return new CropStoreError(
        `crop store ${this.location} refused the request (${action}): ${detail}; check the credentials ` +
          "(store.crops.s3.accessKeyId / secretAccessKey, or the AWS_* variables) and what they may access",
        { cause: err },
      );
    if (code === "NoSuchBucket")
      return new CropStoreError(`crop store ${this.location}: bucket ${this.bucket} does not exist`, {
        cause: err,
      });
    const away = `crop store ${this.location} is unreachable or failing (${action}): ${detail}`;
    if (BUSY.has(code) || (status !== undefined && status >= 500) || isTransient(err))
      return new TransientError(away, { cause: err });
    return new CropStoreError(`crop store ${this.location}: ${action} failed: ${detail}`, { cause: err });
  }

  async put(key: string, bytes: Uint8Array) {
    const Key = this.key(key);
    try {
      await this.client.send(
        new PutObjectCommand({ Bucket: this.bucket, Key, Body: bytes, ContentType: "image/jpeg" }),
      );
    } catch (err) {
      throw this.fail(err, `writing ${Key}`);
    }
  }

  async get(key: string) {
    const Key = this.key(key);
    try {
      const res = await this.client.send(new GetObjectCommand({ Bucket: this.bucket, Key }));
      return res.Body ? await res.Body.transformToByteArray() : new Uint8Array(0);
    } catch (err) {
      const e = err as SdkError;
      if (e.name === "NoSuchKey" || (e.name === "NotFound" && e.$metadata?.httpStatusCode === 404))
        return undefined;
      throw this.fail(err, `reading ${Key}`);
    }
  }

  async *list(prefix = ""): AsyncGenerator<{ key: string; size: number }> {
    let token: string | undefined;
    do {
      let page;
      try {
        page = await this.client.send(
          new ListObjectsV2Command({
            Bucket: this.bucket,
            Prefix: this.prefix + prefix,
            ContinuationToken: token,
          }),
        );
      } catch (err) {
        throw this.fail(err, `listing ${this.location}`);
      }
      for (const o of page.Contents ?? [])
        if (o.Key) yield { key: o.Key.slice(this.prefix.length), size: o.Size ?? 0 };
      token = page.IsTruncated ? page.NextContinuationToken : undefined;
    } while (token);
  }

  async delete(keys: string[]) {
    const all = [...new Set(keys.map((k) => this.key(k)))];
    for (let i = 0; i < all.length; i += DELETE_BATCH) {
      const batch = all.slice(i, i + DELETE_BATCH);
      if (this.batchDelete) {
        try {
          await this.deleteBatch(batch);
          continue;
        } catch (err) {
          const e = err as SdkError;
          if (e.name !== "NotImplemented" && e.$metadata?.httpStatusCode !== 501)
            throw err instanceof CropStoreError || err instanceof TransientError
              ? err
              : this.fail(err, `deleting ${batch.length} objects`);
          this.batchDelete = false;
        }
      }
      await eachLimited(batch, 16, async (Key) => {
        try {
          await this.client.send(new DeleteObjectCommand({ Bucket: this.bucket, Key }));
        } catch (err) {
          throw this.fail(err, `deleting ${Key}`);
        }
      });
    }
  }

  private async deleteBatch(keys: string[]) {
    const res = await this.client.send(
      new DeleteObjectsCommand({
        Bucket: this.bucket,
        Delete: { Objects: keys.map((Key) => ({ Key })), Quiet: true },
      }),
    );
    // A key with nothing under it is a success in S3; anything reported here is a real failure.
    const failed = res.Errors ?? [];
    if (failed.length > 0) {
      const first = failed[0]!;
      throw this.fail(
        { name: first.Code, message: first.Message, $metadata: {} },
        `deleting ${failed.length} of ${keys.length} objects, first ${first.Key}`,
      );
    }
  }

  async check() {
    try {
      await this.client.send(new HeadBucketCommand({ Bucket: this.bucket }));
    } catch (err) {
      // HEAD answers carry no body, so the SDK names them by status only.
      if ((err as SdkError).$metadata?.httpStatusCode === 404)
        throw new CropStoreError(`crop store ${this.location}: bucket ${this.bucket} does not exist`, {
          cause: err,
        });
      throw this.fail(err, "checking the bucket");
    }
  }

  close() {
    this.client.destroy();
  }
}

import { Ajv, type ValidateFunction } from "ajv";
import { readFileSync } from "node:fs";
import path from "node:path";
import { checkoutRoot } from "../../util/checkout.ts";

type Json = Record<string, unknown>;

/** Qdrant's official OpenAPI document the tests check traffic against (`VIGIL_QDRANT_OPENAPI` names another). */
export const QDRANT_OPENAPI =
  process.env.VIGIL_QDRANT_OPENAPI ?? path.resolve(checkoutRoot(), "../shared/qdrant/openapi-v1.19.json");

/** One endpoint of the document: `call` is what tests name it by, e.g. `PUT /collections/{collection_name}/points`. */
export interface QdrantOperation {
  call: string;
  template: string;
  /** The path's parameters, decoded (the collection's name first where there is one). */
  params: string[];
}

interface Endpoint {
  method: string;
  template: string;
  regex: RegExp;
  request?: ValidateFunction;
  response?: ValidateFunction;
}

/**
 * Qdrant's REST API as its OpenAPI document describes it: which endpoint a request is for, and whether a request
 * body or a reply is one the document allows. Both the fake and the checking proxy in front of a real server
 * answer through this, so every request Vigil sends in a test is held to the published schema.
 */
export class QdrantApi {
  private readonly endpoints: Endpoint[] = [];
  /** The release the document describes (`v1.19.x` → `1.19.0`), or "" when it names none. */
  readonly documentedVersion: string;

  constructor(specFile = QDRANT_OPENAPI) {
    const spec = openApi30ToJsonSchema(JSON.parse(readFileSync(specFile, "utf8"))) as {
      paths: Record<string, Record<string, Json>>;
      info?: { version?: string };
    };
    this.documentedVersion = String(spec.info?.version ?? "")
      .replace(/^v/, "")
      .replace(/\bx\b/g, "0");
    const ajv = new Ajv({ strict: false, validateFormats: false, allErrors: true });
    ajv.addSchema(spec as unknown as Json, "qdrant");
    const compile = (schema: unknown) =>
      schema
        ? ajv.compile(JSON.parse(JSON.stringify(schema).replaceAll('"#/components/', '"qdrant#/components/')))
        : undefined;
    for (const [template, methods] of Object.entries(spec.paths)) {
      for (const [method, op] of Object.entries(methods)) {
        const body = (op.requestBody as Json | undefined)?.content as Json | undefined;
        const ok = ((op.responses as Json)["200"] as Json | undefined)?.content as Json | undefined;
        this.endpoints.push({
          method: method.toUpperCase(),
          template,
          regex: new RegExp(`^${template.replace(/\{[^}]+\}/g, "([^/]+)")}$`),
          request: compile((body?.["application/json"] as Json | undefined)?.schema),
          response: compile((ok?.["application/json"] as Json | undefined)?.schema),
        });
      }
    }
  }

  /** The endpoint `method pathname` calls, or undefined when the API has none such. */
  operation(method: string, pathname: string): QdrantOperation | undefined {
    const e = this.endpoints.find((o) => o.method === method && o.regex.test(pathname));
    if (!e) return undefined;
    const params = e.regex.exec(pathname)!.slice(1).map(decodeURIComponent);
    return { call: `${e.method} ${e.template}`, template: e.template, params };
  }

  /** Why the document does not allow this request body, or undefined when it does. */
  requestViolation(op: QdrantOperation, body: unknown): string | undefined {
    return this.violation(op, "request", body);
  }

  /** Why the document does not allow this 200 reply, or undefined when it does. */
  responseViolation(op: QdrantOperation, reply: unknown): string | undefined {
    return this.violation(op, "response", reply);
  }

  private violation(op: QdrantOperation, kind: "request" | "response", value: unknown) {
    const validate = this.endpoints.find((e) => `${e.method} ${e.template}` === op.call)?.[kind];
    if (!validate || validate(value)) return undefined;
    return `${op.call} ${kind}: ${JSON.stringify(validate.errors?.slice(0, 3))}`;
  }
}

/**
 * OpenAPI 3.0 marks nullability with `nullable: true`, which JSON Schema (and so ajv) spells as a `null` type:
 * `{type: T, nullable: true}` → `{type: [T, "null"]}`, a bare `{nullable: true}` → `{type: "null"}`.
 */
function openApi30ToJsonSchema(node: unknown): unknown {
  if (Array.isArray(node)) return node.map(openApi30ToJsonSchema);
  if (!node || typeof node !== "object") return node;
  const out: Json = {};
  for (const [k, v] of Object.entries(node as Json)) out[k] = openApi30ToJsonSchema(v);
  if (out.nullable === true) {
    delete out.nullable;
    if (typeof out.type === "string") out.type = [out.type, "null"];
    else if (out.type === undefined && !out.$ref && !out.anyOf && !out.oneOf && !out.allOf) out.type = "null";
    else if (out.type === undefined)
      out.anyOf = [...((out.anyOf as unknown[]) ?? [{ ...out }]), { type: "null" }];
  } else if (out.nullable === false) delete out.nullable;
  return out;
}

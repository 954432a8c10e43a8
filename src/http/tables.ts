/**
 * `GET /v1/tables/:table[/:key]`: rows committed by table sinks. A listing
 * walks the table's partitions in order and pages with an opaque cursor.
 */
import { Hono } from "hono";
import { FloeError } from "../errors.js";
import { tablePartitionOf } from "../connectors/sinks/table-sink.js";
import { keyText } from "../graph/key-groups.js";
import type { FloeEnv } from "../runtime/env.js";
import { tablePartitionName } from "../runtime/names.js";
import type { JobRegistry } from "../runtime/registry.js";

/** Rows per page when `?limit=` is absent, and the most allowed. */
export const TABLE_PAGE_DEFAULT = 100;
export const TABLE_PAGE_MAX = 1000;

interface Cursor {
  p: number;
  k: string | null;
}

function encodeCursor(c: Cursor): string {
  return btoa(JSON.stringify(c)).replaceAll("+", "-").replaceAll("/", "_").replaceAll("=", "");
}

function decodeCursor(text: string, partitions: number): Cursor {
  try {
    const c = JSON.parse(atob(text.replaceAll("-", "+").replaceAll("_", "/"))) as Cursor;
    if (Number.isInteger(c.p) && c.p >= 0 && c.p < partitions && (c.k === null || typeof c.k === "string")) return c;
  } catch {
    // fall through
  }
  throw new FloeError("invalid_cursor", "the cursor is not one this table returned");
}

/** The table routes, mounted at /v1/tables. */
export function tableRoutes(registry: JobRegistry) {
  const app = new Hono<{ Bindings: FloeEnv }>();
  const table = (name: string) => {
    const t = registry.table(name);
    if (!t) throw new FloeError("table_not_found", `no table named "${name}"`, 404);
    return t;
  };
  const partition = (env: FloeEnv, name: string, p: number) => env.TABLE_PARTITION.get(env.TABLE_PARTITION.idFromName(tablePartitionName(name, p)));

  app.get("/:table", async (c) => {
    const t = table(c.req.param("table"));
    const limitText = c.req.query("limit");
    const limit = limitText === undefined ? TABLE_PAGE_DEFAULT : Number(limitText);
    if (!Number.isInteger(limit) || limit < 1 || limit > TABLE_PAGE_MAX) {
      throw new FloeError("invalid_request", `limit must be an integer in 1..${TABLE_PAGE_MAX}`);
    }
    const cursorText = c.req.query("cursor");
    let cursor: Cursor | null = cursorText ? decodeCursor(cursorText, t.partitions) : { p: 0, k: null };
    const rows: unknown[] = [];
    while (cursor && rows.length < limit) {
      const page: { rows: unknown[]; last: string | null } = await partition(c.env, t.name, cursor.p).list(cursor.k, limit - rows.length);
      rows.push(...page.rows);
      if (page.last !== null) cursor = { p: cursor.p, k: page.last };
      else cursor = cursor.p + 1 < t.partitions ? { p: cursor.p + 1, k: null } : null;
    }
    return c.json({ rows, next_cursor: cursor ? encodeCursor(cursor) : null });
  });

  app.get("/:table/:key", async (c) => {
    const t = table(c.req.param("table"));
    const key = c.req.param("key");
    let row = await partition(c.env, t.name, tablePartitionOf(key, t.partitions)).get(key);
    // A path segment is text; a table keyed by numbers is looked up by the number it spells.
    if (!row && /^-?\d+(\.\d+)?$/.test(key)) {
      const n = Number(key);
      row = await partition(c.env, t.name, tablePartitionOf(n, t.partitions)).get(keyText(n));
    }
    if (!row) throw new FloeError("row_not_found", `table "${t.name}" has no row for key ${JSON.stringify(key)}`, 404);
    return c.json(row);
  });

  return app;
}

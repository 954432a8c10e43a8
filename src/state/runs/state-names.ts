/**
 * The per-operator dictionary of state names: each state gets a small
 * integer id the first time it is declared, and entries carry the id (one
 * byte) instead of the name. Kept in SQL beside the runs, so that ids stay
 * the same across restarts; a run file carries its own copy (run-file.ts).
 */
import type { Sql } from "../../storage/sql.js";

/** A declared state: its id, name and kind ("value", "map", "list", "timers", ...). */
export interface StateName {
  readonly id: number;
  readonly name: string;
  readonly kind: string;
}

/** Ids of operator `uid`'s states. */
export class StateNames {
  private readonly byName = new Map<string, StateName>();
  private readonly byId = new Map<number, StateName>();

  constructor(
    private readonly sql: Sql,
    private readonly uid: string,
  ) {
    sql.exec(`CREATE TABLE IF NOT EXISTS state_names (op TEXT NOT NULL, id INTEGER NOT NULL, name TEXT NOT NULL, kind TEXT NOT NULL, PRIMARY KEY (op, id), UNIQUE (op, name))`);
    for (const r of sql.exec<{ id: number; name: string; kind: string }>(`SELECT id, name, kind FROM state_names WHERE op = ?`, uid)) this.remember(r);
  }

  /** The id of state `name`, declared now as `kind` if it is new; a state redeclared with another kind is an error. */
  id(name: string, kind: string): number {
    const known = this.byName.get(name);
    if (known) {
      if (known.kind !== kind) throw new TypeError(`operator "${this.uid}": state "${name}" is ${known.kind} state, not ${kind} state`);
      return known.id;
    }
    const id = this.byId.size === 0 ? 1 : Math.max(...this.byId.keys()) + 1;
    this.sql.exec(`INSERT INTO state_names (op, id, name, kind) VALUES (?, ?, ?, ?)`, this.uid, id, name, kind);
    this.remember({ id, name, kind });
    return id;
  }

  /** The state with id `id`, if declared. */
  get(id: number): StateName | undefined {
    return this.byId.get(id);
  }

  /** The state named `name`, if declared. */
  byNameOf(name: string): StateName | undefined {
    return this.byName.get(name);
  }

  /** Every declared state. */
  all(): StateName[] {
    return [...this.byId.values()].sort((a, b) => a.id - b.id);
  }

  /** A state's name for errors ("#7" when unknown). */
  describe(id: number): string {
    return this.byId.get(id)?.name ?? `#${id}`;
  }

  private remember(s: StateName): void {
    const entry = { id: s.id, name: s.name, kind: s.kind };
    this.byName.set(s.name, entry);
    this.byId.set(s.id, entry);
  }
}

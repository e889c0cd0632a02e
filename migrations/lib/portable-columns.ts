import { PostgresAdapter, type ColumnDefinitionBuilder, type Kysely } from 'kysely'

// The few column definitions SQLite and PostgreSQL cannot share. Migrations that ran depend on these
// exact definitions: add new helpers, never change one. Everything else is written once for both
// (`bigint` and `double precision` mean INTEGER and REAL to SQLite).

/** True when the migration runs on PostgreSQL. */
export function isPostgres(db: Kysely<any>): boolean {
  return db.getExecutor().adapter instanceof PostgresAdapter
}

/** Bytes: SQLite's `blob`, PostgreSQL's `bytea`. */
export function binaryType(db: Kysely<any>): 'blob' | 'bytea' {
  return isPostgres(db) ? 'bytea' : 'blob'
}

/** A generated integer key: `integer primary key autoincrement` on SQLite, an identity column on PostgreSQL. */
export function autoIncrementKey(db: Kysely<any>): (column: ColumnDefinitionBuilder) => ColumnDefinitionBuilder {
  return isPostgres(db) ? (column) => column.primaryKey().generatedByDefaultAsIdentity() : (column) => column.primaryKey().autoIncrement()
}

import { openPgSpool } from './pg/spool.js';
import { openSpool, type Spool, type SpoolOptions } from './spool.js';

/** Where the spool is: `url` (PostgreSQL) when set, else SQLite in `dataDir`. */
export interface SpoolTarget {
  readonly dataDir: string;
  readonly url: string;
  /** PostgreSQL: erasure rewrites the tables it touched (see [spool] erase_rewrite). */
  readonly eraseRewrite?: boolean;
}

/** Opens the configured backend; the rest of Petrel sees the same Spool either way. */
export async function connectSpool(target: SpoolTarget, options: SpoolOptions = {}): Promise<Spool> {
  return target.url === ''
    ? openSpool(target.dataDir, options)
    : openPgSpool(target.url, options, { eraseRewrite: target.eraseRewrite ?? false });
}

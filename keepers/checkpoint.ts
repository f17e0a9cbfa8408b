import * as fs from "fs";
import * as path from "path";
import type { IndexSnapshot } from "./indexer";

/**
 * Writes the checkpoint atomically: a temporary file in the same folder, fsynced, then renamed over the
 * old one (rename is atomic on POSIX file systems), so a crash leaves either the old or the new file.
 */
export function writeCheckpoint(file: string, snapshot: IndexSnapshot): void {
  const dir = path.dirname(file);
  fs.mkdirSync(dir, { recursive: true });
  const tmp = path.join(dir, `.${path.basename(file)}.${process.pid}.tmp`);
  const fd = fs.openSync(tmp, "w");
  try {
    fs.writeSync(fd, JSON.stringify(snapshot));
    fs.fsyncSync(fd);
  } finally {
    fs.closeSync(fd);
  }
  fs.renameSync(tmp, file);
  try {
    const dfd = fs.openSync(dir, "r");
    fs.fsyncSync(dfd);
    fs.closeSync(dfd);
  } catch {
    /* directories cannot be fsynced on every platform */
  }
}

/** Reads a checkpoint; null when there is none. Throws on a corrupt file (the caller decides). */
export function readCheckpoint(file: string): IndexSnapshot | null {
  if (!fs.existsSync(file)) return null;
  const text = fs.readFileSync(file, "utf8");
  const s = JSON.parse(text) as IndexSnapshot;
  if (typeof s !== "object" || s === null || typeof s.lastBlock !== "number" || !Array.isArray(s.accounts) || !Array.isArray(s.orders)) {
    throw new Error("checkpoint has an unexpected shape");
  }
  return s;
}

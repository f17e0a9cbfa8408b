import * as fs from "fs";
import * as path from "path";

/** Real Chainlink ETH/USD rounds (../shared/data, README there). A user's clone has none: callers then get a
 * generated path with the same cadence. */
export const DEFAULT_ROUNDS_CSV = path.join(__dirname, "../../../shared/data/chainlink_eth_usd_rounds.csv");

export interface Round {
  roundId: bigint;
  answer: bigint;
  updatedAt: bigint;
}

/** The first `limit` rounds of `csv` (roundId,answer,startedAt,updatedAt…), or, when the file is missing, a seeded
 * random walk published with Chainlink's update rule (0.5% deviation or a 1 h heartbeat, checked every minute). */
export function loadRounds(limit: number, csv = DEFAULT_ROUNDS_CSV): { rounds: Round[]; real: boolean } {
  if (fs.existsSync(csv)) {
    const lines = fs.readFileSync(csv, "utf8").trim().split("\n").slice(1, limit + 1);
    const rounds = lines.map((l) => {
      const [roundId, answer, , updatedAt] = l.split(",");
      return { roundId: BigInt(roundId), answer: BigInt(answer), updatedAt: BigInt(updatedAt) };
    });
    return { rounds, real: true };
  }
  let seed = 42;
  const rnd = () => ((seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31);
  const rounds: Round[] = [];
  let p = 2000e8;
  let last = p;
  let t = 1_700_000_000;
  let lastT = t;
  while (rounds.length < limit) {
    t += 60;
    p *= 1 + (rnd() - 0.5) * 0.004;
    if (Math.abs(p / last - 1) >= 0.005 || t - lastT >= 3600) {
      rounds.push({ roundId: (6n << 64n) | BigInt(rounds.length + 1), answer: BigInt(Math.round(p)), updatedAt: BigInt(t) });
      last = p;
      lastT = t;
    }
  }
  return { rounds, real: false };
}

// Long stateful-fuzzing campaigns against Sigma on Hardhat's in-process EVM (the same harness as the CI-sized
// run in test/fuzz/stateful.fuzz.test.ts).
//
//   npx ts-node --transpile-only scripts/fuzz.ts --runs 200 --seed 42   (or: npm run fuzz -- --runs 200 --seed 42)
//   FUZZ_RUNS=200 FUZZ_SEED=42 npx hardhat run scripts/fuzz.ts   (hardhat run passes no CLI flags: use env)
//
// Options (flag or env): --runs N (FUZZ_RUNS, default 100), --seed S (FUZZ_SEED, default: time-based, printed),
// --commands N max actions per run (FUZZ_COMMANDS, default 120), --time-limit S stop after S seconds
// (FUZZ_TIME_LIMIT), --allow a,b downgrade named invariants (reported contract bugs) to counted warnings
// (SIGMA_FUZZ_ALLOW), --verbose. SIGMA_FUZZ_CROSSCHECK=1 also reads every state with the ABI reader and fails on
// any difference from the flat reader the harness uses (slower; for changes to FuzzReader.sol).
// On failure it prints the failing command sequence, shrunk, the violated invariant and the last transactions,
// and how to replay it (seed + path); at the end it prints steps × invariants checked. Exit code 1 on failure.
import "../test/fuzz/edr-malloc"; // first: EDR's allocator settings (read when EDR loads)
import hre from "hardhat";

function arg(name: string, env: string): string | undefined {
  const i = process.argv.indexOf(`--${name}`);
  if (i >= 0 && i + 1 < process.argv.length) return process.argv[i + 1];
  const eq = process.argv.find((a) => a.startsWith(`--${name}=`));
  if (eq) return eq.slice(name.length + 3);
  return process.env[env];
}

async function main() {
  const runs = Number(arg("runs", "FUZZ_RUNS") ?? 100);
  const seed = Number(arg("seed", "FUZZ_SEED") ?? Date.now() % 2 ** 31);
  const maxCommands = Number(arg("commands", "FUZZ_COMMANDS") ?? 120);
  const limit = arg("time-limit", "FUZZ_TIME_LIMIT");
  const allow = arg("allow", "SIGMA_FUZZ_ALLOW");
  if (allow !== undefined) process.env.SIGMA_FUZZ_ALLOW = allow;
  const verbose = process.argv.includes("--verbose");
  if (!Number.isFinite(runs) || runs < 1 || !Number.isFinite(seed) || !Number.isFinite(maxCommands)) {
    throw new Error("usage: scripts/fuzz.ts --runs N --seed S [--commands N] [--time-limit S] [--allow inv1,inv2] [--verbose]");
  }
  await hre.run("compile", { quiet: true });
  const { loadFixture } = await import("@nomicfoundation/hardhat-network-helpers");
  const { fuzzWorldFixture, runCampaign, hourlyCloses } = await import("../test/fuzz/harness");

  console.log(`Sigma stateful fuzz: runs=${runs} seed=${seed} maxCommands=${maxCommands}${limit ? ` timeLimit=${limit}s` : ""}`);
  console.log(`price moves: ${hourlyCloses() ? "real hourly ETH/USD closes (../shared/data/eth_usd_1h.csv)" : "generated (../shared/data absent)"}`);
  if (process.env.SIGMA_FUZZ_ALLOW) console.log(`allowed (warn-only) invariants: ${process.env.SIGMA_FUZZ_ALLOW}`);
  const started = Date.now();
  let lastPrint = 0;
  const { details, stats, report } = await runCampaign({
    runs,
    maxCommands,
    seed,
    verbose,
    timeLimitMs: limit ? Number(limit) * 1000 : undefined,
    loadWorld: () => loadFixture(fuzzWorldFixture),
    onRunStart: (n, st) => {
      if (Date.now() - lastPrint > 15_000) {
        lastPrint = Date.now();
        console.log(`  run ${n} (incl. shrinking replays), ${st.steps} steps, ${st.checks} checks, ${((Date.now() - started) / 1000).toFixed(0)}s`);
      }
    },
  });
  const secs = ((Date.now() - started) / 1000).toFixed(1);
  console.log(`\n${stats.report()}\nelapsed ${secs}s`);
  if (details.failed) {
    console.log(`\nFAILED — shrunk counterexample:\n${report}`);
    console.log(`\nreplay: npx ts-node --transpile-only scripts/fuzz.ts --seed ${seed} --runs ${runs} --commands ${maxCommands} (fast-check path ${details.counterexamplePath})`);
    process.exitCode = 1;
  } else if (details.interrupted) {
    console.log(`\nstopped by the time limit after ${details.numRuns} runs: no invariant violated`);
  } else {
    console.log(`\nPASSED: ${details.numRuns} runs, no invariant violated`);
  }
}

main().catch((e) => {
  console.error(e);
  process.exitCode = 1;
});

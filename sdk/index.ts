/**
 * Sigma's integrator SDK.
 *
 * - `SigmaClient` (sdk/client.ts): connect to a deployment file, read market snapshots, quote, preview a
 *   trade's effect on an account, commit orders, deposit (also with an ERC-2612 permit) and withdraw.
 * - Margin math (sdk/margin.ts): a bigint mirror of MarginMath and of the ClearingHouse's account
 *   arithmetic, equal to the contracts to the wei; pure, no chain needed.
 * - Deployment files (sdk/deployment.ts): read and validate deployments/<network>.json and connect the
 *   typechain bindings.
 *
 * The volatility estimator's TypeScript specification lives in sdk/volatility.ts (import it directly).
 */
export * from "./margin";
export * from "./deployment";
export * from "./client";

/**
 * Reading Sigma's deployment files (`deployments/<network>.json`, written by scripts/deploy.ts) and
 * connecting the typechain bindings of the contracts they name.
 */
import * as fs from "fs";
import { getAddress, isAddress } from "ethers";
import type { ContractRunner, Provider } from "ethers";
import { z } from "zod";
import {
  ClearingHouse__factory,
  ERC20Permit__factory,
  LiquidityPool__factory,
  RiskManager__factory,
  SigmaAutomation__factory,
  SigmaLens__factory,
  Vault__factory,
} from "../typechain-types";
import type {
  ClearingHouse,
  ERC20Permit,
  LiquidityPool,
  RiskManager,
  SigmaAutomation,
  SigmaLens,
  Vault,
} from "../typechain-types";

/** A deployment file that is missing, not JSON, or does not match the schema (one line per problem). */
export class DeploymentError extends Error {
  constructor(public readonly problems: string[]) {
    super(problems.join("\n"));
    this.name = "DeploymentError";
  }
}

/** An EVM address, normalized to its checksummed form. */
const address = z
  .string()
  .refine((s) => isAddress(s), { message: "not an address" })
  .transform((s) => getAddress(s));
/** A non-negative integer written as a decimal string (how the file stores uint256 parameters). */
const uintString = z.string().regex(/^\d+$/, { message: "not a non-negative integer string" });

/**
 * Schema of `deployments/<network>.json` (scripts/lib/deployment-file.ts `DeploymentFile`). `lens` and
 * `automation` are optional so that files of deployments that predate them still load; everything the SDK
 * needs to price and margin (clearing house, risk manager, vault, pool, collateral) is required.
 */
export const DeploymentFileSchema = z.object({
  network: z.string().min(1),
  chainId: z.number().int().positive(),
  deploymentBlock: z.number().int().min(0),
  deployedAt: z.string().optional(),
  contracts: z.object({
    collateral: address,
    riskManager: address,
    vault: address,
    clearingHouse: address,
    liquidityPool: address,
    lens: address.optional(),
    automation: address.optional(),
    sequencerFeed: address.optional(),
  }),
  collateralDecimals: z.number().int().min(0).max(18),
  markets: z
    .array(
      z.object({
        marketId: z.number().int().min(0),
        symbol: z.string().min(1),
        priceFeed: address,
        volFeed: address,
      }),
    )
    .superRefine((ms, ctx) => {
      ms.forEach((m, i) => {
        if (m.marketId !== i) ctx.addIssue({ code: "custom", path: [i, "marketId"], message: `expected ${i} (ids are sequential from 0)` });
      });
    }),
  params: z.record(z.string(), uintString).default({}),
});

/** A validated deployment file (addresses checksummed). */
export type SigmaDeploymentFile = z.infer<typeof DeploymentFileSchema>;

/** Validates parsed JSON as a deployment file; `source` names it in error messages. */
export function parseDeployment(json: unknown, source = "deployment"): SigmaDeploymentFile {
  const r = DeploymentFileSchema.safeParse(json);
  if (!r.success) {
    throw new DeploymentError(r.error.issues.map((i) => `${source}: field "${i.path.join(".") || "(root)"}": ${i.message}`));
  }
  return r.data;
}

/** Reads and validates `deployments/<network>.json`. */
export function readDeployment(file: string): SigmaDeploymentFile {
  if (!fs.existsSync(file)) {
    throw new DeploymentError([`${file}: not found (deploy first: npx hardhat run scripts/deploy.ts --network <name>)`]);
  }
  let json: unknown;
  try {
    json = JSON.parse(fs.readFileSync(file, "utf8"));
  } catch (e) {
    throw new DeploymentError([`${file}: not valid JSON (${(e as Error).message})`]);
  }
  return parseDeployment(json, file);
}

/** The protocol's contracts, typechain-typed, connected to one runner (a provider to read, a signer to send). */
export interface SigmaContracts {
  clearingHouse: ClearingHouse;
  riskManager: RiskManager;
  vault: Vault;
  pool: LiquidityPool;
  /** The collateral token (ERC-20 with ERC-2612 permit, e.g. USDC). */
  collateral: ERC20Permit;
  /** SigmaLens, on deployments that have one. */
  lens?: SigmaLens;
  /** SigmaAutomation, on deployments that have one. */
  automation?: SigmaAutomation;
}

/** Connects the typechain bindings of every contract of a deployment to `runner`. */
export function connectContracts(d: SigmaDeploymentFile, runner: ContractRunner | null): SigmaContracts {
  const c = d.contracts;
  return {
    clearingHouse: ClearingHouse__factory.connect(c.clearingHouse, runner),
    riskManager: RiskManager__factory.connect(c.riskManager, runner),
    vault: Vault__factory.connect(c.vault, runner),
    pool: LiquidityPool__factory.connect(c.liquidityPool, runner),
    collateral: ERC20Permit__factory.connect(c.collateral, runner),
    ...(c.lens ? { lens: SigmaLens__factory.connect(c.lens, runner) } : {}),
    ...(c.automation ? { automation: SigmaAutomation__factory.connect(c.automation, runner) } : {}),
  };
}

/**
 * Checks that a deployment file describes the chain behind `provider`: same chain id, code at every
 * contract address, and the wiring the contracts report (vault and risk manager of the clearing house,
 * token of the vault). Throws a {@link DeploymentError} listing every mismatch.
 */
export async function verifyDeployment(d: SigmaDeploymentFile, provider: Provider): Promise<void> {
  const problems: string[] = [];
  const net = await provider.getNetwork();
  if (net.chainId !== BigInt(d.chainId)) problems.push(`chainId: file says ${d.chainId}, provider is on ${net.chainId}`);
  const named = Object.entries(d.contracts).filter((e): e is [string, string] => typeof e[1] === "string");
  const codes = await Promise.all(named.map(([, a]) => provider.getCode(a)));
  named.forEach(([name, a], i) => {
    if (codes[i] === "0x") problems.push(`contracts.${name}: no code at ${a}`);
  });
  if (problems.length === 0) {
    const c = connectContracts(d, provider);
    const [vault, rm, token] = await Promise.all([
      c.clearingHouse.vaultAddress(),
      c.clearingHouse.riskManagerAddress(),
      c.vault.token(),
    ]);
    if (getAddress(vault) !== d.contracts.vault) problems.push(`contracts.vault: the clearing house uses ${vault}`);
    if (getAddress(rm) !== d.contracts.riskManager) problems.push(`contracts.riskManager: the clearing house uses ${rm}`);
    if (getAddress(token) !== d.contracts.collateral) problems.push(`contracts.collateral: the vault holds ${token}`);
  }
  if (problems.length) throw new DeploymentError(problems.map((p) => `${d.network}: ${p}`));
}

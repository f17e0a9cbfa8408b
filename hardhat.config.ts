import { HardhatUserConfig, subtask } from "hardhat/config";
import { TASK_COMPILE_SOLIDITY_GET_SOLC_BUILD } from "hardhat/builtin-tasks/task-names";
import "@nomicfoundation/hardhat-toolbox";

// The machines this project runs on reach the npm registry only, so the compiler comes from the pinned
// `solc` npm package (WASM) instead of Hardhat's download. Keep SOLC_VERSION equal to package.json's solc.
const SOLC_VERSION = "0.8.28";
const COVERAGE = process.env.COVERAGE === "1";

subtask(TASK_COMPILE_SOLIDITY_GET_SOLC_BUILD, async (args: { solcVersion: string }, _hre, runSuper) => {
  if (args.solcVersion === SOLC_VERSION) {
    // eslint-disable-next-line @typescript-eslint/no-var-requires
    const solcPkg = require("solc/package.json");
    return {
      compilerPath: require.resolve("solc/soljson.js"),
      isSolcJs: true,
      version: args.solcVersion,
      longVersion: `${solcPkg.version}`,
    };
  }
  return runSuper();
});

const config: HardhatUserConfig = {
  solidity: {
    compilers: [
      {
        version: SOLC_VERSION,
        settings: {
          optimizer: { enabled: true, runs: 200 },
          evmVersion: "cancun",
          // Ask solcjs only for what Hardhat and typechain use: it fails on big outputs otherwise.
          outputSelection: {
            "*": {
              "*": ["abi", "evm.bytecode", "evm.deployedBytecode", "evm.methodIdentifiers"],
              "": ["ast"],
            },
          },
        },
      },
    ],
    // viaIR where it pays: the ClearingHouse stays under the 24 KiB limit with room to grow, and the hot
    // paths of these contracts get cheaper. Other files keep the faster legacy pipeline.
    overrides: Object.fromEntries(
      [
        "contracts/clearinghouse/ClearingHouse.sol",
        "contracts/clearinghouse/LiquidationMath.sol",
        "contracts/clearinghouse/ClearingHouseParams.sol",
        "contracts/risk/RiskManager.sol",
      ].map((file) => [
        file,
        {
          version: SOLC_VERSION,
          settings: {
            viaIR: true,
            optimizer: { enabled: true, runs: 200 },
            evmVersion: "cancun",
            outputSelection: {
              "*": {
                "*": ["abi", "evm.bytecode", "evm.deployedBytecode", "evm.methodIdentifiers"],
                "": ["ast"],
              },
            },
          },
        },
      ]),
    ),
  },
  networks: {
    hardhat: {
      // The protocol's contracts exceed 24 KiB only under coverage instrumentation.
      allowUnlimitedContractSize: COVERAGE,
      // Instrumented code burns several times the gas. Under Osaka (Hardhat's default hardfork) EIP-7825 caps a
      // transaction at 2^24 gas, which solidity-coverage then also sends: the long estimator walks (many-round
      // pokes) exceed it. Coverage runs on Prague (no cap; the contracts target Cancun). The 1,200-round replay
      // (test/estimator) is left out of `npm run coverage`: instrumented, it outlasts its own 10-min timeout and
      // its still-running loop then breaks the tests after it. It runs in `npm test`.
      ...(COVERAGE ? { hardfork: "prague" } : {}),
    },
    localhost: { url: process.env.SIGMA_RPC_URL ?? "http://127.0.0.1:8545" },
  },
  // Coverage instrumentation slows the EVM several times: give long tests room there.
  mocha: { timeout: COVERAGE ? 1_800_000 : 120_000 },
  typechain: { outDir: "typechain-types", target: "ethers-v6" },
  gasReporter: { enabled: process.env.REPORT_GAS === "1", currency: "USD" },
};

export default config;

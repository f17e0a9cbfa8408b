// solidity-coverage settings: mocks are test scaffolding, not protocol code.
module.exports = {
  skipFiles: ["mocks/"],
  configureYulOptimizer: true,
  // viaIR contracts need the optimizer's stack handling under instrumentation.
  solcOptimizerDetails: { peephole: false, inliner: false, jumpdestRemover: false, orderLiterals: true, deduplicate: false, cse: false, constantOptimizer: false, yul: true },
  mocha: { timeout: 300000 },
  istanbulReporter: ["html", "lcov", "text", "json-summary"],
};

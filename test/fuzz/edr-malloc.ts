// Allocator settings for Hardhat's in-process EVM (EDR) in fuzz runs. Import this module before anything sends
// the first JSON-RPC request: EDR's native module (with its statically linked mimalloc, which reads MIMALLOC_*
// once, when the module is loaded) is loaded lazily on that request.
//
// Why: EDR records every EVM step of every eth_call and transaction (for Solidity stack traces) in vectors that
// grow to megabytes per call. With mimalloc's defaults the freed memory is returned to the OS 10 ms later and
// re-faulted, as transparent huge pages that the kernel zeroes, on the next call: on the fuzz harness's one
// large read per step this page-fault work took more CPU than executing the EVM. Keeping freed memory
// (purge_delay −1) and using normal pages makes the same run ~1.4× faster. Only memory reuse changes: resident
// memory stays at the run's peak instead of shrinking between calls. Values already set in the environment win.
//
// In `npm test` the fuzz test file is loaded before any test runs, so the settings apply to the whole mocha
// process (harmless there: same results, less page-fault work).
process.env.MIMALLOC_PURGE_DELAY ??= "-1";
process.env.MIMALLOC_ALLOW_LARGE_OS_PAGES ??= "0";

export {};

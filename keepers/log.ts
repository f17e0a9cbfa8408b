import pino, { Logger } from "pino";

export type { Logger };

/**
 * JSON logs on stdout (one object per line). The private key never reaches a log call; the redaction list
 * is a second line of defence in case an object carrying one is ever logged by mistake.
 */
export function createLogger(level: string = "info", destination?: pino.DestinationStream): Logger {
  return pino(
    {
      level,
      base: { service: "sigma-keeper", pid: process.pid },
      timestamp: pino.stdTimeFunctions.isoTime,
      redact: {
        paths: ["key", "privateKey", "*.key", "*.privateKey", "signingKey", "*.signingKey", "wallet", "*.wallet"],
        censor: "[redacted]",
      },
      formatters: { level: (label) => ({ level: label }) },
    },
    destination ?? pino.destination({ fd: 1, sync: true }),
  );
}

/** A logger that drops everything (unit tests). */
export function silentLogger(): Logger {
  return pino({ level: "silent" });
}

import { getAddress, keccak256 } from "ethers";

/**
 * Which accounts, orders and markets this instance handles: accounts with keccak256(account) mod n == i,
 * orders with orderId mod n == i, markets with marketId mod n == i. With n = 1 it handles everything.
 */
export class Shard {
  constructor(
    readonly index: number,
    readonly count: number,
  ) {
    if (!Number.isInteger(count) || count < 1 || !Number.isInteger(index) || index < 0 || index >= count) {
      throw new Error(`invalid shard ${index}/${count}`);
    }
  }

  static all(): Shard {
    return new Shard(0, 1);
  }

  ownsAccount(account: string): boolean {
    if (this.count === 1) return true;
    return accountShard(account, this.count) === this.index;
  }

  ownsOrder(orderId: bigint | string | number): boolean {
    return this.count === 1 || BigInt(orderId) % BigInt(this.count) === BigInt(this.index);
  }

  ownsMarket(marketId: number): boolean {
    return this.count === 1 || marketId % this.count === this.index;
  }

  toString(): string {
    return `${this.index}/${this.count}`;
  }
}

/** keccak256 of the 20 address bytes, mod n. */
export function accountShard(account: string, count: number): number {
  return Number(BigInt(keccak256(getAddress(account))) % BigInt(count));
}

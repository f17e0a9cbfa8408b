/** Orders fills so the running skew stays near zero: `first` goes first, then longs and shorts of `rest`
 * alternate by the sign of the skew so far (a long while the skew is ≤ 0, else a short), each side in its
 * own order, and whatever side is left over goes last. Used by the cascade test and the keeper bench, whose
 * fills must not pay a large skew premium. */
export function interleaveBySkew<T extends { size: bigint }>(first: T, rest: T[]): T[] {
  const longs = rest.filter((x) => x.size > 0n);
  const shorts = rest.filter((x) => x.size < 0n);
  const seq: T[] = [first];
  let skew = 0n;
  let li = 0;
  let si = 0;
  while (li < longs.length || si < shorts.length) {
    const takeLong = li < longs.length && (skew <= 0n || si >= shorts.length);
    const x = takeLong ? longs[li++] : shorts[si++];
    skew += x.size;
    seq.push(x);
  }
  return seq;
}

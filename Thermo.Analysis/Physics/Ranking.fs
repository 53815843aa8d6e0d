namespace Thermo.Analysis.Physics

open System

/// Rankings of the units of a layer (docs/THEORY.md "Rankings and pruning criteria").
module Ranking =
    /// Unit indices ordered from the highest score to the lowest (hottest first for temperatures);
    /// ties keep the lower unit index first, so the order is deterministic.
    /// NaN ranks below every number (Double.CompareTo's order).
    let descending (scores: float[]) : int[] =
        let order = Array.init scores.Length id
        // Sorted on keys with the runtime's primitive sort of float64 (no comparison delegate: a
        // language model's 50,257-row embedding is ranked in a few milliseconds): the key is the
        // negated score, NaN mapped with −∞ to +∞. A run of equal keys (ties, or −∞ beside NaN) is
        // then put in the order the definition gives: numbers before NaN, lower index first.
        let keys = scores |> Array.map (fun s -> if Double.IsNaN s then Double.PositiveInfinity else -s)
        Array.Sort(keys, order)
        let mutable i = 0
        while i < order.Length do
            let mutable j = i
            while j + 1 < order.Length && keys[j + 1] = keys[i] do j <- j + 1
            if j > i then
                Array.Sort(order, i, j - i + 1, Collections.Generic.Comparer<int>.Create(fun a b ->
                    let c = compare (Double.IsNaN scores[a]) (Double.IsNaN scores[b])
                    if c <> 0 then c else compare a b))
            i <- j + 1
        order

    /// Fractional ranks (1 = smallest), ties sharing the average of the ranks they span.
    let fractionalRanks (scores: float[]) : float[] =
        let sorted = Array.copy scores
        let order = Array.init scores.Length id
        System.Array.Sort(sorted, order)
        let ranks = Array.zeroCreate scores.Length
        let mutable i = 0
        while i < order.Length do
            let mutable j = i
            while j + 1 < order.Length && sorted[j + 1] = sorted[i] do j <- j + 1
            let average = float (i + j) / 2.0 + 1.0
            for t in i..j do ranks[order[t]] <- average
            i <- j + 1
        ranks

    /// Spearman rank correlation: Pearson correlation of the fractional ranks (ties averaged).
    let spearman (a: float[]) (b: float[]) : float =
        if a.Length <> b.Length then invalidArg "b" "rankings differ in length"
        if a.Length < 2 then nan
        else MathNet.Numerics.Statistics.Correlation.Pearson(fractionalRanks a, fractionalRanks b)

    /// A random order of `units` units from `seed` (the null baseline; average several draws).
    let random (seed: int) (units: int) : int[] =
        let rng = System.Random(seed)
        let order = Array.init units id
        rng.Shuffle order
        order

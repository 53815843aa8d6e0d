namespace Thermo.Analysis.Physics

/// Rankings of the units of a layer (docs/THEORY.md "Rankings and pruning criteria").
module Ranking =
    /// Unit indices ordered from the highest score to the lowest (hottest first for temperatures);
    /// ties keep the lower unit index first, so the order is deterministic.
    /// NaN ranks below every number (Double.CompareTo's order).
    let descending (scores: float[]) : int[] =
        let order = Array.init scores.Length id
        // Indices sorted with a primitive comparison: a layer of 50,000 units (an embedding's rows)
        // is ranked in milliseconds, where sorting (index, score) tuples generically took tens.
        System.Array.Sort(order, System.Comparison(fun i j -> let c = scores[j].CompareTo scores[i] in if c <> 0 then c else i.CompareTo j))
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

namespace Thermo.Analysis.Physics

/// Rankings of the units of a layer (docs/THEORY.md "Rankings and pruning criteria").
module Ranking =
    /// Unit indices ordered from the highest score to the lowest (hottest first for temperatures);
    /// ties keep the lower unit index first, so the order is deterministic.
    let descending (scores: float[]) : int[] =
        scores |> Array.mapi (fun i s -> i, s) |> Array.sortWith (fun (i, a) (j, b) -> if a = b then compare i j else compare b a) |> Array.map fst

    /// Fractional ranks (1 = smallest), ties sharing the average of the ranks they span.
    let fractionalRanks (scores: float[]) : float[] =
        let order = scores |> Array.mapi (fun i s -> i, s) |> Array.sortBy snd
        let ranks = Array.zeroCreate scores.Length
        let mutable i = 0
        while i < order.Length do
            let mutable j = i
            while j + 1 < order.Length && snd order[j + 1] = snd order[i] do j <- j + 1
            let average = float (i + j) / 2.0 + 1.0
            for t in i..j do ranks[fst order[t]] <- average
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

namespace Thermo.Analysis

open System
open MathNet.Numerics.Distributions

/// A paired comparison of two conditions measured on the same runs: d_r = a_r − b_r.
type PairedComparison =
    { /// Runs compared (pairs).
      Runs: int
      /// The per-run differences, in run order.
      Differences: float[]
      MeanDifference: float
      /// Sample standard deviation of the differences (n − 1).
      StandardDeviation: float
      /// 95 % Student-t interval of the mean difference.
      Low95: float
      High95: float
      /// Two-sided paired t-test p-value (NaN with fewer than two runs or no spread).
      TPValue: float
      /// Two-sided Wilcoxon signed-rank p-value, exact (zero differences dropped, midranks for ties);
      /// 1 when every difference is zero.
      WilcoxonPValue: float }

/// The statistics behind the tables' claims (SPEC "Statistics"): paired comparisons across runs and
/// the significance of rank correlations. MathNet supplies the distributions.
module PairedTests =
    /// Two-sided exact Wilcoxon signed-rank p-value of the differences: the share of the 2^n sign
    /// patterns whose W+ lies at least as far from its mean as the observed one. Ranks are doubled to
    /// integers (midranks of ties are halves), so the null distribution is counted exactly by dynamic
    /// programming over rank sums — O(n · Σranks), fine for the tens of runs an experiment has.
    [<CompiledName("WilcoxonSignedRank")>]
    let wilcoxonSignedRank (differences: float[]) =
        let d = differences |> Array.filter (fun x -> abs x > 1e-12)
        let n = d.Length
        if n = 0 then 1.0
        else
            let magnitudes = d |> Array.map abs
            // twice the midrank of each magnitude
            let doubledRank x =
                let below = magnitudes |> Array.filter (fun y -> y < x - 1e-12) |> Array.length
                let equal = magnitudes |> Array.filter (fun y -> abs (y - x) <= 1e-12) |> Array.length
                2 * below + equal + 1
            let ranks = magnitudes |> Array.map doubledRank
            let total = Array.sum ranks
            let observed = Array.fold2 (fun acc x r -> if x > 0.0 then acc + r else acc) 0 d ranks
            // counts[s] = sign patterns whose doubled W+ is s
            let counts = Array.zeroCreate<float> (total + 1)
            counts[0] <- 1.0
            for r in ranks do
                for s in total .. -1 .. r do
                    counts[s] <- counts[s] + counts[s - r]
            let centre = float total / 2.0
            let distance = abs (float observed - centre)
            let extreme = counts |> Array.mapi (fun s c -> if abs (float s - centre) >= distance - 1e-9 then c else 0.0) |> Array.sum
            min 1.0 (extreme / Math.Pow(2.0, float n))

    /// Paired comparison of `a` and `b` (same runs, same order): mean difference, sd, 95 % t interval,
    /// paired t and Wilcoxon signed-rank p-values.
    [<CompiledName("Compare")>]
    let compare (a: float[]) (b: float[]) : PairedComparison =
        if a.Length <> b.Length then invalidArg "b" (sprintf "paired samples differ in length: %d and %d" a.Length b.Length)
        let d = Array.map2 (-) a b
        let n = d.Length
        let mean = if n = 0 then nan else Array.average d
        let sd = if n < 2 then nan else sqrt ((d |> Array.sumBy (fun x -> (x - mean) ** 2.0)) / float (n - 1))
        let tP, low, high =
            if n < 2 then nan, nan, nan
            elif sd = 0.0 then (if mean = 0.0 then 1.0 else 0.0), mean, mean
            else
                let se = sd / sqrt (float n)
                let t = mean / se
                let half = StudentT.InvCDF(0.0, 1.0, float (n - 1), 0.975) * se
                2.0 * (1.0 - StudentT.CDF(0.0, 1.0, float (n - 1), abs t)), mean - half, mean + half
        { Runs = n; Differences = d; MeanDifference = mean; StandardDeviation = sd; Low95 = low; High95 = high
          TPValue = tP; WilcoxonPValue = wilcoxonSignedRank d }

    /// Two-sided p-value of a Spearman correlation ρ over n pairs, from t = ρ·√((n − 2)/(1 − ρ²)) with
    /// n − 2 degrees of freedom (NaN below 3 pairs). With 12 filters the 5 % critical |ρ| is about 0.58.
    [<CompiledName("SpearmanPValue")>]
    let spearmanPValue (rho: float) (n: int) =
        if n < 3 || Double.IsNaN rho then nan
        elif abs rho >= 1.0 then 0.0
        else
            let t = rho * sqrt (float (n - 2) / (1.0 - rho * rho))
            2.0 * (1.0 - StudentT.CDF(0.0, 1.0, float (n - 2), abs t))

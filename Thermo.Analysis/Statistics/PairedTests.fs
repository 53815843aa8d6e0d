namespace Thermo.Analysis.Statistics

open System
open MathNet.Numerics.Distributions
open Thermo.Analysis.Physics

/// A paired comparison of two conditions measured on the same runs: d_r = a_r − b_r.
type PairedComparison =
    { /// Runs compared (pairs).
      Runs: int
      /// The per-run differences, in run order.
      Differences: float[]
      MeanDifference: float
      /// Sample standard deviation of the differences (n − 1); 0 when the spread is at rounding level
      /// (below 1e-9 of the mean's magnitude, or of 1).
      StandardDeviation: float
      /// 95 % Student-t interval of the mean difference.
      Low95: float
      High95: float
      /// Two-sided paired t-test p-value: NaN with fewer than two runs, or with no spread and a non-zero
      /// mean (t is undefined); 1 when every difference is zero.
      TPValue: float
      /// Two-sided Wilcoxon signed-rank p-value, exact (zero differences dropped, midranks for ties);
      /// 1 when every difference is zero.
      WilcoxonPValue: float }

/// The statistics behind the tables' claims (docs/THEORY.md, "Statistics"): paired comparisons across runs and
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
        // Differences within 1e-9 are zero: two rows computed from the same model (or averaged draws of
        // it) differ only by rounding, which must not read as a perfectly consistent effect.
        let d = Array.map2 (fun x y -> let v = x - y in if abs v < 1e-9 then 0.0 else v) a b
        let n = d.Length
        let mean = if n = 0 then nan else Array.average d
        let spread = if n < 2 then nan else sqrt ((d |> Array.sumBy (fun x -> (x - mean) ** 2.0)) / float (n - 1))
        // A spread at rounding level (equal differences computed as 100·a − 100·b) is no spread: it must
        // not make t astronomically large.
        let sd = if spread <= 1e-9 * max 1.0 (abs mean) then 0.0 else spread
        let tP, low, high =
            if n < 2 then nan, nan, nan
            // Identical differences: nothing to test against when they are zero (p = 1); when they are
            // not, the t statistic is undefined and no p-value is claimed.
            elif sd = 0.0 then (if mean = 0.0 then 1.0 else nan), mean, mean
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

/// A two-one-sided-tests (TOST) equivalence test of paired differences against a margin ±δ stated
/// before looking at the data.
type EquivalenceTest =
    { /// The equivalence margin δ (same unit as the differences), > 0.
      Margin: float
      /// p-value of H0: mean ≤ −δ (one-sided paired t).
      PLower: float
      /// p-value of H0: mean ≥ +δ (one-sided paired t).
      PUpper: float
      /// The TOST p-value, max(PLower, PUpper): equivalence within ±δ is shown at level α when it is below α.
      P: float
      /// 90 % t interval of the mean difference (inside ±δ exactly when P < 0.05).
      Low90: float
      High90: float
      /// The smallest margin these data could show equivalence within at α = 0.05:
      /// |mean| + t(0.95, n−1)·sd/√n (the edge of the 90 % interval farther from zero).
      SmallestShowableMargin: float }

/// Corrections for many comparisons, equivalence tests and the stability of rankings, for the claims
/// the result tables make (docs/THEORY.md "Statistics across runs").
module MultipleTests =
    /// Holm's step-down adjustment of p-values (family-wise error control, no assumption on the
    /// dependence between tests): sort the m p-values ascending, p₍ᵢ₎ becomes max over j ≤ i of
    /// min(1, (m − j + 1)·p₍ⱼ₎), returned in the input order. NaN p-values (tests that could not be made)
    /// stay NaN and do not count in m. O(m log m).
    [<CompiledName("Holm")>]
    let holm (pValues: float[]) : float[] =
        let valid = pValues |> Array.mapi (fun i p -> i, p) |> Array.filter (fun (_, p) -> not (Double.IsNaN p)) |> Array.sortBy snd
        let m = valid.Length
        let adjusted = Array.create pValues.Length nan
        let mutable running = 0.0
        valid |> Array.iteri (fun j (i, p) ->
            running <- max running (min 1.0 (float (m - j) * p))
            adjusted[i] <- running)
        adjusted

    /// TOST of paired differences against ±margin: two one-sided paired t-tests with n − 1 degrees of
    /// freedom. Needs at least two differences and a positive margin (`invalidArg` otherwise). With no
    /// spread, P is 0 when |mean| < margin and 1 otherwise.
    [<CompiledName("Equivalence")>]
    let equivalence (differences: float[]) (margin: float) : EquivalenceTest =
        if not (margin > 0.0) then invalidArg "margin" (sprintf "the equivalence margin must be positive, got %g" margin)
        let n = differences.Length
        if n < 2 then invalidArg "differences" (sprintf "an equivalence test needs at least two paired differences, got %d" n)
        let mean = Array.average differences
        let sd = sqrt ((differences |> Array.sumBy (fun x -> (x - mean) ** 2.0)) / float (n - 1))
        let df = float (n - 1)
        let critical = StudentT.InvCDF(0.0, 1.0, df, 0.95)
        if sd = 0.0 then
            let inside = abs mean < margin
            { Margin = margin; PLower = (if mean > -margin then 0.0 else 1.0); PUpper = (if mean < margin then 0.0 else 1.0)
              P = (if inside then 0.0 else 1.0); Low90 = mean; High90 = mean; SmallestShowableMargin = abs mean }
        else
            let se = sd / sqrt (float n)
            let pLower = 1.0 - StudentT.CDF(0.0, 1.0, df, (mean + margin) / se)
            let pUpper = StudentT.CDF(0.0, 1.0, df, (mean - margin) / se)
            { Margin = margin; PLower = pLower; PUpper = pUpper; P = max pLower pUpper
              Low90 = mean - critical * se; High90 = mean + critical * se
              SmallestShowableMargin = abs mean + critical * se }

    /// How stable a ranking of units is over a window: the Spearman ρ between the units' mean
    /// instantaneous temperatures over the window's first half and over its second half.
    /// `temperatures[u][e]` is unit u's T(e) over the window's velocities in time order; with an odd
    /// count the middle one is left out. NaN with fewer than 2 units or 2 velocities.
    [<CompiledName("HalfWindowStability")>]
    let halfWindowStability (temperatures: float[][]) : float =
        if temperatures.Length < 2 then nan
        else
            let n = temperatures[0].Length
            if n < 2 || temperatures |> Array.exists (fun t -> t.Length <> n) then nan
            else
                let half = n / 2
                let first = temperatures |> Array.map (fun t -> Array.average t[.. half - 1])
                let second = temperatures |> Array.map (fun t -> Array.average t[n - half ..])
                Ranking.spearman first second

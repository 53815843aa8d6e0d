module Thermo.Analysis.Tests.StatisticsTests

open System
open Expecto
open FsCheck
open Thermo.Analysis.Statistics

/// The exact Wilcoxon p-value by brute force over all 2^n sign patterns (the oracle).
let private bruteWilcoxon (d: float[]) =
    let d = d |> Array.filter (fun x -> abs x > 1e-12)
    let m = d |> Array.map abs
    let rank x = float (m |> Array.filter (fun y -> y < x) |> Array.length) + (float (m |> Array.filter (fun y -> y = x) |> Array.length) + 1.0) / 2.0
    let r = m |> Array.map rank
    let half = Array.sum r / 2.0
    let observed = abs ((Array.zip d r |> Array.sumBy (fun (x, k) -> if x > 0.0 then k else 0.0)) - half)
    let patterns = 1 <<< d.Length
    let extreme = [ 0 .. patterns - 1 ] |> List.filter (fun p -> abs ((r |> Array.mapi (fun i k -> if (p >>> i) &&& 1 = 1 then k else 0.0) |> Array.sum) - half) >= observed - 1e-9)
    if d.Length = 0 then 1.0 else float extreme.Length / float patterns

[<Tests>]
let tests =
    testList "statistics" [
        testCase "hand-worked paired comparison" <| fun () ->
            // d = 1, 2, 3: mean 2, sd 1, t = 2/(1/√3) = 3.464 with 2 df → p = 0.0742; 95 % half width 4.303/√3 = 2.484
            let c = PairedTests.compare [| 2.0; 4.0; 6.0 |] [| 1.0; 2.0; 3.0 |]
            Expect.floatClose Accuracy.high c.MeanDifference 2.0 "mean"
            Expect.floatClose Accuracy.high c.StandardDeviation 1.0 "sd"
            Expect.floatClose { absolute = 1e-4; relative = 0.0 } c.TPValue 0.0742 "t p-value"
            Expect.floatClose { absolute = 1e-3; relative = 0.0 } c.Low95 (2.0 - 2.484) "interval"
            // all three positive: W+ is the maximum; 2 of 8 patterns as extreme (all + or all −)
            Expect.floatClose Accuracy.high c.WilcoxonPValue 0.25 "Wilcoxon exact"

        testCase "identical differences claim no t p-value, whatever the rounding" <| fun () ->
            // 84.10 − 83.69 and 84.51 − 84.10 are both 0.41 in exact arithmetic, not in floating point.
            let c = PairedTests.compare [| 100.0 * 0.8410; 100.0 * 0.8451 |] [| 100.0 * 0.8369; 100.0 * 0.8410 |]
            Expect.floatClose Accuracy.high c.MeanDifference 0.41 "mean"
            Expect.equal c.StandardDeviation 0.0 "rounding-level spread is no spread"
            Expect.isTrue (Double.IsNaN c.TPValue) "no t p-value without spread"
            let same = PairedTests.compare [| 1.0; 2.0 |] [| 1.0; 2.0 |]
            Expect.equal same.TPValue 1.0 "no difference at all: p = 1"

        testCase "Wilcoxon equals the brute-force count, with ties and zeros" <| fun () ->
            for d in [ [| 1.0; -2.0; 3.0; 3.0; 0.0; -0.5 |]; [| 0.5; 0.5; 0.5; -0.5 |]; [| 0.0; 0.0 |]; [| -1.0; -2.0; -3.0; -4.0; -5.0; -6.0; -7.0; -8.0; -9.0; -10.0 |] ] do
                Expect.floatClose Accuracy.high (PairedTests.wilcoxonSignedRank d) (bruteWilcoxon d) (sprintf "%A" d)

        testProperty "p-values lie in [0, 1] and do not depend on the sign of the differences" <| fun (xs: NormalFloat list) ->
            let d = xs |> List.truncate 12 |> List.map (fun x -> x.Get) |> List.toArray
            let p = PairedTests.wilcoxonSignedRank d
            let flipped = PairedTests.wilcoxonSignedRank (d |> Array.map (~-))
            p >= 0.0 && p <= 1.0 && abs (p - flipped) < 1e-9 && abs (p - bruteWilcoxon d) < 1e-9

        testCase "Spearman p-value: the 5 % critical ρ of 12 pairs is about 0.58" <| fun () ->
            Expect.isLessThan (PairedTests.spearmanPValue 0.60 12) 0.05 "ρ 0.60 significant"
            Expect.isGreaterThan (PairedTests.spearmanPValue 0.55 12) 0.05 "ρ 0.55 not"
            Expect.floatClose Accuracy.high (PairedTests.spearmanPValue 0.0 12) 1.0 "ρ 0 → p 1"
    ]

/// Student's t CDF with 2 degrees of freedom in closed form, 1/2 + t / (2√(2 + t²)): an oracle independent of MathNet.
let private t2Cdf (t: float) = 0.5 + t / (2.0 * sqrt (2.0 + t * t))

[<Tests>]
let multipleTests =
    testList "multiple comparisons, equivalence, stability" [
        testCase "Holm's adjustment of four p-values, worked by hand" <| fun () ->
            // sorted 0.005, 0.01, 0.03, 0.04 → 4·0.005, 3·0.01, 2·0.03, max(1·0.04, 0.06)
            let adjusted = MultipleTests.holm [| 0.01; 0.04; 0.03; 0.005; nan |]
            let expected = [| 0.03; 0.06; 0.06; 0.02 |]
            for i in 0..3 do Expect.floatClose Accuracy.veryHigh adjusted[i] expected[i] (sprintf "p%d" i)
            Expect.isTrue (Double.IsNaN adjusted[4]) "a test that could not be made stays NaN and is not counted"

        testProperty "Holm never lowers a p-value, keeps it at most 1 and keeps the raw order" <| fun (raw: NormalFloat list) ->
            let p = raw |> List.map (fun x -> abs x.Get % 1.0) |> Array.ofList
            let adjusted = MultipleTests.holm p
            Array.forall2 (fun a r -> a >= r - 1e-15 && a <= 1.0) adjusted p
            && (Array.allPairs (Array.zip p adjusted) (Array.zip p adjusted) |> Array.forall (fun ((r1, a1), (r2, a2)) -> r1 > r2 || a1 <= a2 + 1e-15))

        testCase "TOST of three differences against ±5, worked with the closed-form t CDF of 2 degrees of freedom" <| fun () ->
            // mean 2, sd 1, se 1/√3
            let test = MultipleTests.equivalence [| 1.0; 2.0; 3.0 |] 5.0
            let se = 1.0 / sqrt 3.0
            Expect.floatClose Accuracy.high test.PLower (1.0 - t2Cdf ((2.0 + 5.0) / se)) "H0: mean ≤ −5"
            Expect.floatClose Accuracy.high test.PUpper (t2Cdf ((2.0 - 5.0) / se)) "H0: mean ≥ +5"
            Expect.floatClose Accuracy.high test.P (max test.PLower test.PUpper) "TOST p"
            Expect.isLessThan test.P 0.05 "equivalent within ±5"
            // t(0.95, 2) = 2.919986: the interval 2 ± 2.919986/√3
            Expect.floatClose Accuracy.medium test.SmallestShowableMargin (2.0 + 2.919986 * se) "smallest showable margin"
            Expect.floatClose Accuracy.medium test.High90 (2.0 + 2.919986 * se) "90 % interval"
            let edge = MultipleTests.equivalence [| 1.0; 2.0; 3.0 |] test.SmallestShowableMargin
            Expect.floatClose Accuracy.medium edge.P 0.05 "at the smallest showable margin, p is exactly 0.05"
            Expect.isGreaterThan (MultipleTests.equivalence [| 1.0; 2.0; 3.0 |] 2.5).P 0.05 "±2.5 cannot be shown"

        testProperty "TOST: equivalence shown at 5 % exactly when the 90 % interval lies inside the margin" <| fun (values: NormalFloat list) (margin: PositiveInt) ->
            let d = values |> List.map (fun x -> x.Get % 10.0) |> Array.ofList
            d.Length < 2 || (Array.max d - Array.min d) < 1e-9 ||
                (let test = MultipleTests.equivalence d (float margin.Get / 3.0)
                 let inside = test.Low90 > -test.Margin && test.High90 < test.Margin
                 abs (test.P - 0.05) < 1e-9 || (test.P < 0.05) = inside)

        testCase "half-window stability of three units, worked by hand" <| fun () ->
            // first halves 1, 3, 2; second halves 2, 1, 3: ranks (1 3 2) and (2 1 3), Σd² = 6, ρ = 1 − 36/24
            let rho = MultipleTests.halfWindowStability [| [| 1.0; 1.0; 2.0; 2.0 |]; [| 3.0; 3.0; 1.0; 1.0 |]; [| 2.0; 2.0; 3.0; 3.0 |] |]
            Expect.floatClose Accuracy.veryHigh rho -0.5 "ρ"
            // an odd count leaves the middle velocity out
            Expect.floatClose Accuracy.veryHigh (MultipleTests.halfWindowStability [| [| 1.0; 99.0; 1.0 |]; [| 2.0; -99.0; 2.0 |] |]) 1.0 "middle left out"
            Expect.isTrue (Double.IsNaN (MultipleTests.halfWindowStability [| [| 1.0; 2.0 |] |])) "one unit: no ranking"
    ]

module Thermo.Analysis.Tests.StatisticsTests

open System
open Expecto
open FsCheck
open Thermo.Analysis

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

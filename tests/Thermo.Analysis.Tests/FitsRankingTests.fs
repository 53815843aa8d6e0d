module Thermo.Analysis.Tests.FitsRankingTests

open Expecto
open FsCheck
open Thermo.Analysis.Run
open Thermo.Analysis.Physics

[<Tests>]
let tests =
    testList "fits and rankings" [
        testCase "an exact power law is recovered with R² = 1" <| fun () ->
            let x = [| 0.5; 1.0; 2.0; 4.0; 8.0 |]
            let fit = Fits.powerLaw x (x |> Array.map (fun v -> 3.0 * v ** 2.0))
            Expect.floatClose Accuracy.high fit.Slope 2.0 "β"
            Expect.floatClose Accuracy.high (exp fit.Intercept) 3.0 "c"
            Expect.floatClose Accuracy.high fit.RSquared 1.0 "R²"
            Expect.equal (fit.RangeFrom, fit.RangeTo, fit.Points) (0.5, 8.0, 5) "range"

        testCase "a power law drops non-positive points and needs two" <| fun () ->
            let fit = Fits.powerLaw [| 0.0; 1.0; 2.0 |] [| 5.0; 1.0; 8.0 |]
            Expect.floatClose Accuracy.high fit.Slope 3.0 "β from the two positive points"
            Expect.throwsT<System.ArgumentException> (fun () -> Fits.powerLaw [| 1.0 |] [| 1.0 |] |> ignore) "one point"

        testCase "hottest first, ties by unit index" <| fun () ->
            Expect.sequenceEqual (Ranking.descending [| 0.1; 0.5; 0.3; 0.5 |]) [| 1; 3; 2; 0 |] "order"
            Expect.sequenceEqual (Ranking.descending [| nan; -infinity; 0.0; -0.0; infinity; nan |]) [| 4; 2; 3; 1; 0; 5 |] "±∞, signed zeros as equal, NaN last"

        testProperty "the ranking is the one a comparison sort gives: score descending (Double.CompareTo, NaN lowest), then index" <|
            fun (scores: float[]) (ties: int[]) ->
                // Ties and special values are common among the drawn scores.
                let scores = Array.append scores (ties |> Array.map (fun t -> [| 0.0; -0.0; 1.0; nan; infinity; -infinity |].[abs (t % 6)]))
                let expected = Array.init scores.Length id |> Array.sortWith (fun i j -> let c = scores[j].CompareTo scores[i] in if c <> 0 then c else compare i j)
                Ranking.descending scores = expected

        testCase "Spearman of reversed orders is −1, of equal orders 1, with ties averaged" <| fun () ->
            Expect.floatClose Accuracy.high (Ranking.spearman [| 1.0; 2.0; 3.0; 4.0 |] [| 40.0; 30.0; 20.0; 10.0 |]) -1.0 "reversed"
            Expect.floatClose Accuracy.high (Ranking.spearman [| 1.0; 5.0; 3.0 |] [| 2.0; 9.0; 4.0 |]) 1.0 "same order"
            Expect.sequenceEqual (Ranking.fractionalRanks [| 10.0; 20.0; 10.0; 30.0 |]) [| 1.5; 3.0; 1.5; 4.0 |] "ties share 1.5"
            // hand value: ranks a = (1.5, 3, 1.5, 4), b = (1, 2, 3, 4): Pearson = 0.6325 (= 2/√10)
            Expect.floatClose Accuracy.medium (Ranking.spearman [| 10.0; 20.0; 10.0; 30.0 |] [| 1.0; 2.0; 3.0; 4.0 |]) (2.0 / sqrt 10.0) "tied"

        testCase "random orders are permutations fixed by their seed" <| fun () ->
            let a = Ranking.random 3 12
            Expect.sequenceEqual (Array.sort a) [| 0 .. 11 |] "a permutation"
            Expect.sequenceEqual (Ranking.random 3 12) a "same seed, same order"
    ]

[<Tests>]
let noiseTests =
    testList "gradient noise" [
        testCase "exponential decays are recovered per layer and in common" <| fun () ->
            // layer a: 2·e^(−0.1 e), layer b: 5·e^(−0.1 e); both cool at rate 0.1 with different amplitudes.
            let rows = [| for e in 1..30 do
                            yield e, "a", 2.0 * exp (-0.1 * float e)
                            yield e, "b", 5.0 * exp (-0.1 * float e) |]
            let decay = GradientNoise.layerDecay rows 10 30
            Expect.equal (decay |> Array.map (fun d -> d.Layer)) [| "a"; "b" |] "layers"
            for d in decay do Expect.floatClose Accuracy.high d.Rate 0.1 d.Layer
            match GradientNoise.commonDecay rows 10 30 with
            | Some(rate, r2) ->
                Expect.floatClose Accuracy.high rate 0.1 "common rate"
                Expect.floatClose Accuracy.high r2 1.0 "exact"
            | None -> failtest "a common rate exists"
            Expect.isNone (GradientNoise.commonDecay rows 40 50) "no epochs in range"

        let noiseRow (epoch, layer, mean) =
            { GradientNoiseRow.Epoch = epoch; GradientNoiseRow.Layer = layer; GradientNoiseRow.Mean = mean; GradientNoiseRow.Std = 0.0; GradientNoiseRow.Batches = 1 }

        testCase "the signal peaks where its mean is largest, per layer, the first epoch on a tie" <| fun () ->
            // fc1 rises to 3.0 at epoch 2 and falls; fc2 reaches 5.0 at epochs 3 and 4 (a tie: 3 is kept).
            let rows = [| 1, "fc1", 1.0; 2, "fc1", 3.0; 3, "fc1", 2.0; 4, "fc1", nan
                          4, "fc2", 5.0; 1, "fc2", 0.5; 3, "fc2", 5.0; 2, "fc2", 4.0 |]
            let peaks = GradientNoise.signalPeaks (Array.map noiseRow rows)
            Expect.equal (peaks |> Array.map (fun p -> p.Layer, p.Epoch, p.Signal)) [| "fc1", 2, 3.0; "fc2", 3, 5.0 |] "peaks"

        testProperty "a layer's signal peak is the largest of its means whatever the rows' order" <| fun (values: NormalFloat list) (shuffle: int) ->
            let means = values |> List.map (fun v -> abs v.Get) |> Array.ofList
            means.Length = 0 ||
                (let rows = means |> Array.mapi (fun i m -> i + 1, "w", m)
                 let rotated = Array.append rows[(abs shuffle % rows.Length) ..] rows[.. (abs shuffle % rows.Length) - 1]
                 let peak = (GradientNoise.signalPeaks (Array.map noiseRow rotated))[0]
                 peak.Signal = Array.max means && means[peak.Epoch - 1] = peak.Signal
                 && Array.forall (fun m -> m < peak.Signal) means[.. peak.Epoch - 2])
    ]

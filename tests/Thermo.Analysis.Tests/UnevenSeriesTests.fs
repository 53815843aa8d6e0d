module Thermo.Analysis.Tests.UnevenSeriesTests

open System
open Expecto
open FsCheck
open FsCheck.FSharp
open Thermo.Analysis
open Thermo.Analysis.Format
open Thermo.Analysis.Physics
open Thermo.Analysis.Engine
open Thermo.Analysis.Tests.Generators

/// A series held in memory: one layer "w" of `units` rows, values[i] the flat values at times[i].
let private inMemory (times: int[]) (units: int) (values: float32[][]) : AnalysisSeries =
    inMemorySeries [| "w", "weight", [| units; values[0].Length / units |] |] times values false Int32.MaxValue

let private analyse (times: int[]) (units: int) (values: float32[][]) =
    let series = inMemory times units values
    let window = Window.resolveUneven series.Name times None (Between(times[0], times[times.Length - 1]))
    Engine.analyzeSeries series window { AnalysisOptions.Default with MsdLayers = Some [| "w" |] } (fun _ _ -> ())

/// A random walk of `weights` weights with per-step variance σ² (Gaussian steps), sampled at `times`.
let private randomWalk (seed: int) (weights: int) (sigma: float) (times: int[]) =
    let rng = Random(seed)
    let gaussian () = sqrt (-2.0 * log (1.0 - rng.NextDouble())) * cos (2.0 * Math.PI * rng.NextDouble())
    let current = Array.zeroCreate<float> weights
    let mutable step = 0
    [| for t in times do
           while step < t do
               for k in 0 .. weights - 1 do current[k] <- current[k] + sigma * gaussian ()
               step <- step + 1
           yield current |> Array.map float32 |]

/// Log-spaced times 0, 1, 2, 4, … , 2^k.
let private logSpaced k = Array.append [| 0 |] (Array.init (k + 1) (fun i -> 1 <<< i))

let private within (tolerance: float) (expected: float) (actual: float) message =
    Expect.isLessThanOrEqual (abs (actual - expected)) (tolerance * abs expected) (sprintf "%s: %g, expected %g ± %.0f%%" message actual expected (100.0 * tolerance))

/// Strictly increasing times with uneven gaps, and values per time.
let private unevenGen =
    gen {
        let! count = Gen.choose (3, 12)
        let! gaps = Gen.arrayOfLength (count - 1) (Gen.choose (1, 40))
        let! seed = Gen.choose (0, Int32.MaxValue)
        let times = Array.scan (+) 0 gaps
        let rng = Random(seed)
        let drift = Array.init 6 (fun _ -> rng.NextDouble() - 0.5)
        let values = times |> Array.map (fun t -> Array.init 6 (fun k -> float32 (drift[k] * 0.01 * float t + (rng.NextDouble() - 0.5) * 0.05)))
        return times, values
    }

type private UnevenSeries =
    static member Series() = Arb.fromGen unevenGen

let private config = { FsCheckConfig.defaultConfig with arbitrary = [ typeof<UnevenSeries> ]; maxTest = 100 }

[<Tests>]
let tests =
    testList "unevenly spaced series" [
        test "a random walk's diffusive rate does not depend on the spacing; its ballistic temperature does" {
            let sigma = 0.01
            let logTimes = logSpaced 9
            let evenTimes = [| 0 .. 16 .. 512 |]
            let walkLog = analyse logTimes 100 (randomWalk 1 20000 sigma logTimes)
            let walkEven = analyse evenTimes 100 (randomWalk 2 20000 sigma evenTimes)
            // E[D(i)] = σ²/2 whatever the gap, for every interval and over the window.
            for result in [ walkLog; walkEven ] do
                let layer = result.Layers[0]
                within 0.05 (sigma * sigma / 2.0) layer.DiffusiveRate "window D"
                let rates = result.DiffusiveRates.Find(fun k -> k.Unit = -1)
                for rate in rates do within 0.08 (sigma * sigma / 2.0) rate "D(i)"
            // E[T(i)] = σ²/(2Δt): the 1-step interval is 256 times hotter than the 256-step one.
            let temperatures = walkLog.Instantaneous.Find(fun k -> k.Unit = -1)
            let intervals = walkLog.Window.Intervals
            Array.iter2 (fun t dt -> within 0.08 (sigma * sigma / (2.0 * float dt)) t (sprintf "T over Δt = %d" dt)) temperatures intervals
            // The window's T is the Δt-weighted mean: (Σ Δt σ²/(2Δt)) / Σ Δt = n σ² / (2 span).
            within 0.05 (float intervals.Length * sigma * sigma / (2.0 * 512.0)) walkLog.Layers[0].Temperature.Temperature "window T (log-spaced)"
            within 0.05 (sigma * sigma / (2.0 * 16.0)) walkEven.Layers[0].Temperature.Temperature "window T (every 16)"
            // Diffusive: MSD ∝ lag, α ≈ 1 on the log-spaced pairs too.
            let alpha = walkLog.Diffusion[0].Alpha.Slope
            Expect.isTrue (abs (alpha - 1.0) < 0.15) (sprintf "α = %g on a random walk" alpha)
        }

        test "a pure drift's temperature does not depend on the spacing; its diffusive rate does" {
            // w = u·t with u a power of two and integer t: every value and difference exact in float32.
            let times = logSpaced 8
            let u = Array.init 40 (fun k -> float32 (k + 1) * 0.125f)
            let values = times |> Array.map (fun t -> u |> Array.map (fun uk -> uk * float32 t))
            let result = analyse times 4 values
            let halfMeanSquare = (u |> Array.averageBy (fun uk -> float uk * float uk)) / 2.0
            let layer = result.Layers[0]
            Expect.floatClose Accuracy.veryHigh layer.Temperature.Temperature halfMeanSquare "T = ½u² whatever the gaps"
            Expect.floatClose Accuracy.veryHigh layer.Temperature.Drift halfMeanSquare "all of it drift"
            Expect.isLessThanOrEqual (abs layer.Temperature.Oscillation) (1e-12 * halfMeanSquare) "no oscillation"
            let temperatures = result.Instantaneous.Find(fun k -> k.Unit = -1)
            for t in temperatures do Expect.floatClose Accuracy.veryHigh t halfMeanSquare "T(i) = ½u²"
            let rates = result.DiffusiveRates.Find(fun k -> k.Unit = -1)
            Array.iter2 (fun d dt -> Expect.floatClose Accuracy.veryHigh d (halfMeanSquare * float dt) "D(i) = u²Δt/2") rates result.Window.Intervals
            let alpha = result.Diffusion[0].Alpha.Slope
            Expect.floatClose Accuracy.medium alpha 2.0 "α = 2 for a drift"
        }

        testPropertyWithConfig config "the window temperature is the Δt-weighted mean of T(i), and oscillation is never negative" <| fun ((times: int[]), (values: float32[][])) ->
            let result = analyse times 2 values
            let layer = result.Layers[0].Temperature
            let dts = times |> Array.pairwise |> Array.map (fun (a, b) -> float (b - a))
            // Oracle: the formulas in plain float64 loops over the stored values.
            let instant = Array.init dts.Length (fun i -> (Array.map2 (fun (a: float32) (b: float32) -> 0.5 * ((float b - float a) / dts[i]) ** 2.0) values[i] values[i + 1]) |> Array.average)
            let expected = Array.fold2 (fun s t d -> s + t * d) 0.0 instant dts / Array.sum dts
            let span = float (times[times.Length - 1] - times[0])
            let drift = Array.map2 (fun (a: float32) (b: float32) -> 0.5 * ((float b - float a) / span) ** 2.0) values[0] values[values.Length - 1] |> Array.average
            let close a b = abs (a - b) <= 1e-9 * max (abs a) (abs b) + 1e-300
            close layer.Temperature expected && close layer.Drift drift && layer.Oscillation >= -1e-12 * layer.Temperature
            && result.Groups |> Array.forall (fun g -> g.Temperature.Oscillation >= -1e-12 * g.Temperature.Temperature)

        testPropertyWithConfig config "MSD over all pairs equals its direct definition" <| fun ((times: int[]), (values: float32[][])) ->
            let trajectories = Array.init values[0].Length (fun k -> values |> Array.map (fun v -> float v[k]))
            let curves = GroupDiffusion.computeUneven times trajectories
            // Direct: for each distinct lag, mean over its pairs of (Δx)², then over weights.
            let pairs = [| for i in 0 .. times.Length - 2 do for j in i + 1 .. times.Length - 1 -> i, j, times[j] - times[i] |]
            let lags = pairs |> Array.map (fun (_, _, l) -> l) |> Array.distinct |> Array.sort
            lags.Length <= GroupDiffusion.DistinctLagLimit ==> lazy (
                let direct =
                    lags |> Array.map (fun lag ->
                        let members = pairs |> Array.filter (fun (_, _, l) -> l = lag)
                        trajectories |> Array.averageBy (fun x -> members |> Array.averageBy (fun (i, j, _) -> (x[j] - x[i]) ** 2.0)))
                curves.Lags = lags && Array.forall2 (fun a b -> abs (a - b) <= 1e-12 * max 1.0 (abs a)) direct curves.Msd)

        test "an evenly spaced series resolves to an even window and the engine's even arithmetic" {
            let times = [| 0; 5; 10; 15; 20 |]
            let window = Window.resolveUneven "s" times None (Last 15)
            Expect.equal (window.IsEven, window.Interval, window.Times) (true, 5, [| 5; 10; 15; 20 |]) "last:15 on a 5-step grid"
            let uneven = Window.resolveUneven "s" [| 0; 1; 3; 7 |] None (Between(1, 7))
            Expect.equal (uneven.IsEven, uneven.Times, uneven.Intervals, uneven.Spacing) (false, [| 1; 3; 7 |], [| 2; 4 |], "uneven, dt 2..4") "uneven window"
            let snapped = Window.resolveUneven "s" [| 0; 1; 3; 7 |] None (Last 5)
            Expect.equal (snapped.Times, snapped.Rule) ([| 3; 7 |], "last:5 (from 3, the first snapshot inside it)") "last:5 starts at the first snapshot after 2"
            Expect.throwsT<SettingException> (fun () -> Window.resolveUneven "s" [| 0; 1; 3; 7 |] None (Last 3) |> ignore) "last:3 holds only the last snapshot"
            Expect.throwsT<SettingException> (fun () -> Window.resolveUneven "s" [| 0; 1; 3; 7 |] None (Between(2, 7)) |> ignore) "a:b needs snapshots at both ends"
        }
    ]

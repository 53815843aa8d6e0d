module Thermo.Analysis.Tests.KinematicsTests

open System
open Expecto
open FsCheck
open FsCheck.FSharp
open Thermo.Analysis

/// A window of snapshots: values[e][k] for e = 0..n, k = 0..K−1 (random walks with a drift per weight).
let private windowGen =
    gen {
        let! weights = Gen.choose (1, 12)
        let! snapshots = Gen.choose (2, 25)
        let! seed = Gen.choose (0, Int32.MaxValue)
        let rng = Random(seed)
        let drift = Array.init weights (fun _ -> rng.NextDouble() - 0.5)
        let values = Array.zeroCreate<float32[]> snapshots
        values[0] <- Array.init weights (fun _ -> float32 (rng.NextDouble() * 2.0 - 1.0))
        for e in 1 .. snapshots - 1 do
            values[e] <- Array.init weights (fun k -> values[e - 1].[k] + float32 (drift[k] * 0.01 + (rng.NextDouble() - 0.5) * 0.02))
        return values
    }

type private Windows =
    static member Window() = Arb.fromGen windowGen

let private config = { FsCheckConfig.defaultConfig with arbitrary = [ typeof<Windows> ]; maxTest = 100 }
let private close (tolerance: float) (expected: float) (actual: float) =
    abs (expected - actual) <= tolerance * max 1e-12 (max (abs expected) (abs actual))

let private all (values: float32[][]) = Array.init values[0].Length id

[<Tests>]
let tests =
    testList "kinematics" [
        testCase "a hand-worked 3-snapshot window" <| fun () ->
            // weight 0 moves 0 → 1 → 3 (velocities 1, 2); weight 1 stays at 0.
            let values = [| [| 0.0f; 0.0f |]; [| 1.0f; 0.0f |]; [| 3.0f; 0.0f |] |]
            let motion = Kinematics.weightMotion 1.0 values
            Expect.sequenceEqual motion.MeanSquareVelocity [| 2.5; 0.0 |] "(1² + 2²)/2"
            Expect.sequenceEqual motion.DriftVelocity [| 1.5; 0.0 |] "(3 − 0)/2"
            let t = Kinematics.groupTemperature Physics.Default motion [| 0; 1 |]
            Expect.floatClose Accuracy.high t.Temperature 0.625 "½·2.5 averaged over 2 weights"
            Expect.floatClose Accuracy.high t.Drift 0.5625 "½·1.5² / 2"
            Expect.floatClose Accuracy.high t.Oscillation 0.0625 "½·var(1, 2) / 2"
            let meanSquare = Kinematics.groupTemperature { Physics.Default with Convention = TemperatureConvention.MeanSquare } motion [| 0; 1 |]
            Expect.floatClose Accuracy.high meanSquare.Temperature 1.25 "plain mean v²"
            let v = Kinematics.velocities 1.0 values[1] values[2]
            Expect.floatClose Accuracy.high (Kinematics.instantaneousTemperature Physics.Default v [| 0; 1 |]) 1.0 "T_G(2) = ½·2² / 2"

        testPropertyWithConfig config "oscillation temperature is the mean of c·(population variance of v_k)" <| fun (values: float32[][]) ->
            let motion = Kinematics.weightMotion 1.0 values
            let t = Kinematics.groupTemperature Physics.Default motion (all values)
            let n = values.Length - 1
            let variances =
                Array.init values[0].Length (fun k ->
                    let v = Array.init n (fun e -> float values[e + 1].[k] - float values[e].[k])
                    let mean = Array.average v
                    v |> Array.averageBy (fun x -> (x - mean) ** 2.0))
            close 1e-6 (0.5 * Array.average variances) t.Oscillation && t.Oscillation >= -1e-15
            && close 1e-12 t.Temperature (t.Drift + t.Oscillation)

        testPropertyWithConfig config "equilibrium temperature is the mean of the instantaneous ones" <| fun (values: float32[][]) ->
            let indices = all values
            let instantaneous =
                Array.init (values.Length - 1) (fun e -> Kinematics.instantaneousTemperature Physics.Default (Kinematics.velocities 1.0 values[e] values[e + 1]) indices)
            close 1e-9 (Array.average instantaneous) (Kinematics.groupTemperature Physics.Default (Kinematics.weightMotion 1.0 values) indices).Temperature

        testPropertyWithConfig config "temperature does not depend on the order of weights" <| fun (values: float32[][]) ->
            let k = values[0].Length
            let permutation = Ranking.random 17 k
            let permuted = values |> Array.map (fun row -> permutation |> Array.map (fun i -> row[i]))
            let a = Kinematics.groupTemperature Physics.Default (Kinematics.weightMotion 1.0 values) (all values)
            let b = Kinematics.groupTemperature Physics.Default (Kinematics.weightMotion 1.0 permuted) (all permuted)
            close 1e-9 a.Temperature b.Temperature && close 1e-9 a.Drift b.Drift

        testPropertyWithConfig config "a group's temperature is the weight-count-weighted mean of its subgroups'" <| fun (values: float32[][]) ->
            let k = values[0].Length
            let split = max 1 (k / 3)
            let motion = Kinematics.weightMotion 1.0 values
            let whole = Kinematics.groupTemperature Physics.Default motion (all values)
            let parts = [ [| 0 .. split - 1 |]; [| split .. k - 1 |] ] |> List.filter (fun p -> p.Length > 0)
            let weighted = parts |> List.sumBy (fun p -> float p.Length * (Kinematics.groupTemperature Physics.Default motion p).Temperature)
            close 1e-9 whole.Temperature (weighted / float k)

        testCase "constant-velocity weights have no oscillation temperature" <| fun () ->
            let values = Array.init 40 (fun e -> [| float32 e * 0.5f; 1.0f - float32 e * 0.25f |])
            let t = Kinematics.groupTemperature Physics.Default (Kinematics.weightMotion 1.0 values) [| 0; 1 |]
            Expect.floatClose Accuracy.medium t.Oscillation 0.0 "no oscillation"
            Expect.floatClose Accuracy.medium t.Temperature t.Drift "all drift"

        testCase "unit L1 norms sum absolute values of each unit" <| fun () ->
            Expect.sequenceEqual (Kinematics.unitL1Norms 2 [| 1.0f; -2.0f; 0.5f; 0.0f |]) [| 3.0; 0.5 |] "per unit"
    ]

module Thermo.Analysis.Tests.KinematicsTests

open System
open Expecto
open FsCheck
open FsCheck.FSharp
open Thermo.Analysis.Physics

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

/// Independent oracles: docs/THEORY.md's formulas as plain loops over float64 arrays, sharing no code with
/// the library (its temperature formula and L1 loop exist once, in Kinematics, and are checked here).
module Oracle =
    /// c of the convention: ½m/k_B (kinetic) or 1 (mean square).
    let factor (convention: TemperatureConvention) (mass: float) (boltzmann: float) =
        if convention = TemperatureConvention.MeanSquare then 1.0 else 0.5 * mass / boltzmann

    /// T_G = c · (1/|G|) Σ_k (1/n) Σ_e ((x_k(e) − x_k(e−1)) / Δt)² over snapshots x(0..n).
    let temperature (c: float) (dt: float) (x: float[][]) (indices: int[]) =
        let n = x.Length - 1
        let mutable total = 0.0
        for k in indices do
            let mutable s = 0.0
            for e in 1..n do
                let v = (x[e].[k] - x[e - 1].[k]) / dt
                s <- s + v * v
            total <- total + s / float n
        c * total / float indices.Length

    /// T_G^drift = c · (1/|G|) Σ_k ((x_k(n) − x_k(0)) / (n Δt))².
    let drift (c: float) (dt: float) (x: float[][]) (indices: int[]) =
        let n = x.Length - 1
        let mutable total = 0.0
        for k in indices do
            let v = (x[n].[k] - x[0].[k]) / (float n * dt)
            total <- total + v * v
        c * total / float indices.Length

    /// Σ |w|.
    let l1 (w: float[]) =
        let mutable s = 0.0
        for x in w do s <- s + (if x < 0.0 then -x else x)
        s

/// Physical constants: either convention, m and k_B in [0.1, 10], Δt in [0.25, 4].
let private physicsGen =
    gen {
        let! meanSquare = Gen.elements [ true; false ]
        let! m = Gen.choose (1, 100)
        let! kb = Gen.choose (1, 100)
        let! dt = Gen.elements [ 0.25; 0.5; 1.0; 2.0; 4.0 ]
        return
            { Convention = (if meanSquare then TemperatureConvention.MeanSquare else TemperatureConvention.Kinetic)
              Mass = float m / 10.0; Boltzmann = float kb / 10.0; Dt = dt }
    }

/// Weight values as stored: float32 in [−10, 10], 0–200 of them.
let private weightsGen =
    gen {
        let! n = Gen.choose (0, 200)
        return! Gen.arrayOfLength n (Gen.choose (-1000000, 1000000) |> Gen.map (fun i -> float32 i / 100000.0f))
    }

type private Oracles =
    static member Window() = Arb.fromGen windowGen
    static member Physics() = Arb.fromGen physicsGen
    static member Weights() = Arb.fromGen weightsGen

let private oracleConfig = { FsCheckConfig.defaultConfig with arbitrary = [ typeof<Oracles> ]; maxTest = 200 }

let private asFloat (values: float32[][]) = values |> Array.map (Array.map float)

[<Tests>]
let oracleTests =
    testList "kinematics against naive oracles" [
        testPropertyWithConfig oracleConfig "equilibrium and drift temperatures equal the oracle's, in both conventions" <| fun (values: float32[][]) (physics: Physics) ->
            let indices = all values
            let c = Oracle.factor physics.Convention physics.Mass physics.Boltzmann
            let t = Kinematics.groupTemperature physics (Kinematics.weightMotion physics.Dt values) indices
            close 1e-12 (Oracle.temperature c physics.Dt (asFloat values) indices) t.Temperature
            && close 1e-12 (Oracle.drift c physics.Dt (asFloat values) indices) t.Drift

        testPropertyWithConfig oracleConfig "instantaneous temperature equals the oracle's over one velocity" <| fun (values: float32[][]) (physics: Physics) ->
            let indices = all values
            let c = Oracle.factor physics.Convention physics.Mass physics.Boltzmann
            let v = Kinematics.velocities physics.Dt values[0] values[1]
            close 1e-12 (Oracle.temperature c physics.Dt (asFloat values[0..1]) indices) (Kinematics.instantaneousTemperature physics v indices)

        testPropertyWithConfig oracleConfig "the temperature formula is c·Σv²/count" <| fun (physics: Physics) (sum: NormalFloat) (count: PositiveInt) ->
            let c = Oracle.factor physics.Convention physics.Mass physics.Boltzmann
            close 1e-15 (c * sum.Get / float count.Get) (Kinematics.temperature physics sum.Get (float count.Get))

        testPropertyWithConfig oracleConfig "L1 norm equals the oracle's sum of absolute values" <| fun (weights: float32[]) ->
            Kinematics.l1Norm weights = Oracle.l1 (weights |> Array.map float)

        testPropertyWithConfig oracleConfig "unit L1 norms equal the oracle's, unit by unit" <| fun (weights: float32[]) (size: PositiveInt) ->
            let unitSize = 1 + size.Get % 9
            let units = weights.Length / unitSize
            let expected = Array.init units (fun u -> Oracle.l1 (weights[u * unitSize .. (u + 1) * unitSize - 1] |> Array.map float))
            Kinematics.unitL1Norms unitSize weights[.. units * unitSize - 1] = expected

        testPropertyWithConfig oracleConfig "the engine's span kernels sum the squared differences and the absolute values" <| fun (a: float32[]) (b: float32[]) ->
            let n = min a.Length b.Length
            let a, b = a[.. n - 1], b[.. n - 1]
            let mutable expected = 0.0
            for i in 0 .. n - 1 do expected <- expected + (float b[i] - float a[i]) * (float b[i] - float a[i])
            let latest = Array.copy a
            let stepped = VelocityKernels.stepSquares (ReadOnlySpan b, Span latest)
            let squares = Array.create n 1.0
            let steppedInto = VelocityKernels.stepSquaresInto (ReadOnlySpan b, Span(Array.copy a), Span squares, 0.5)
            let stored = Array.zeroCreate n
            let differences = VelocityKernels.squaredDifferencesInto (ReadOnlySpan a, ReadOnlySpan b, Span stored, 2.0)
            close 1e-12 expected stepped && latest = b
            && close 1e-12 expected steppedInto && close 1e-12 expected differences
            && close 1e-12 expected (VelocityKernels.squaredDifferences (ReadOnlySpan a, ReadOnlySpan b))
            && Array.forall2 (fun s (x, y) -> close 1e-12 (1.0 + 0.5 * (float y - float x) ** 2.0) s) squares (Array.zip a b)
            && Array.forall2 (fun s (x, y) -> close 1e-12 (2.0 * (float y - float x) ** 2.0) s) stored (Array.zip a b)
            && close 1e-12 (Oracle.l1 (b |> Array.map float)) (VelocityKernels.absoluteSum (ReadOnlySpan b))

        testPropertyWithConfig oracleConfig "a NaN or ±∞ in either snapshot makes the step sum non-finite; finite values never do" <|
            fun (seed: int) (length: PositiveInt) (offset: PositiveInt) (bad: float32) (inPrevious: bool) ->
                // The side-by-side pass checks values inside the analysed units only through their
                // step sums, so this must hold for every length, position and scale.
                let length, at = 1 + length.Get % 300, offset.Get % 13
                let rng = Random(seed)
                let scale = 10.0 ** float (rng.Next(-30, 38))
                let current, previous = Array.init 2 (fun _ -> Array.init (at + length + 5) (fun _ -> float32 ((rng.NextDouble() - 0.5) * 2.0 * scale))) |> fun a -> a[0], a[1]
                let sum () = VelocityKernels.stepSquaresFrom (ReadOnlySpan(current, at, length), ReadOnlySpan(previous, at, length))
                let finiteBefore = Double.IsFinite(sum ())
                (if inPrevious then previous else current).[at + rng.Next length] <- bad
                finiteBefore && Double.IsFinite(sum ()) = Single.IsFinite bad
    ]

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

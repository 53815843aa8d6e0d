module Thermo.Analysis.Tests.DiffusionTests

open System
open Expecto
open FsCheck
open FsCheck.FSharp
open Thermo.Analysis.Physics

let private trajectoryGen =
    gen {
        let! n = Gen.choose (2, 400)
        let! seed = Gen.choose (0, Int32.MaxValue)
        let! offset = Gen.elements [ 0.0; 1.0; -3.5; 100.0 ]
        let rng = Random(seed)
        let x = Array.zeroCreate n
        x[0] <- offset
        for i in 1 .. n - 1 do x[i] <- x[i - 1] + rng.NextDouble() - 0.45
        return x
    }

type private Trajectories =
    static member Trajectory() = Arb.fromGen trajectoryGen

let private config = { FsCheckConfig.defaultConfig with arbitrary = [ typeof<Trajectories> ]; maxTest = 200 }

/// Gaussian steps by Box–Muller.
let private gaussian (rng: Random) =
    sqrt (-2.0 * log (1.0 - rng.NextDouble())) * cos (2.0 * Math.PI * rng.NextDouble())

[<Tests>]
let tests =
    testList "diffusion" [
        testPropertyWithConfig config "FFT MSD equals the direct O(n²) sum within 1e-9 relative" <| fun (x: float[]) ->
            let fast = Diffusion.msd x
            let direct = Diffusion.msdDirect x
            let scale = x |> Array.map (fun v -> v - Array.average x) |> Array.averageBy (fun v -> v * v)
            fast.Length = direct.Length
            && Array.forall2 (fun (a: float) (b: float) -> abs (a - b) <= 1e-9 * abs b + 1e-12 * scale) fast direct

        testPropertyWithConfig config "mean displacement equals its direct sum" <| fun (x: float[]) ->
            let direct =
                Array.init (x.Length - 1) (fun i ->
                    let tau = i + 1
                    Array.init (x.Length - tau) (fun e -> x[e + tau] - x[e]) |> Array.average)
            Array.forall2 (fun (a: float) (b: float) -> abs (a - b) <= 1e-9 * (1.0 + abs b)) (Diffusion.meanDisplacement x) direct

        testCase "a hand-worked trajectory 0, 1, 3" <| fun () ->
            let x = [| 0.0; 1.0; 3.0 |]
            Expect.sequenceEqual (Diffusion.msd x |> Array.map (fun v -> Math.Round(v, 12))) [| 2.5; 9.0 |] "(1 + 4)/2, 9/1"
            Expect.sequenceEqual (Diffusion.meanDisplacement x) [| 1.5; 3.0 |] "(1 + 2)/2, 3"
            Expect.sequenceEqual (Diffusion.driftCorrected x [| 2.5; 9.0 |]) [| 0.25; 0.0 |] "minus (1.5 τ)²"

        testCase "constant velocity is ballistic: α = 2" <| fun () ->
            let trajectories = Array.init 5 (fun k -> Array.init 100 (fun e -> float k + 0.1 * float (k + 1) * float e))
            let g = GroupDiffusion.compute trajectories
            let fit = Fits.anomalousExponent g.Lags g.Msd 1 50
            Expect.floatClose Accuracy.medium fit.Slope 2.0 "α"
            Expect.floatClose Accuracy.medium fit.RSquared 1.0 "exact power law"
            Expect.isTrue (g.DriftCorrectedMsd |> Array.forall (fun v -> abs v < 1e-9)) "drift removes all of it"

        testCase "a Gaussian random walk is diffusive: α ≈ 1 and D ≈ σ²/2" <| fun () ->
            let sigma = 0.3
            let rng = Random(42)
            let trajectories =
                Array.init 400 (fun _ ->
                    let x = Array.zeroCreate 1001
                    for e in 1..1000 do x[e] <- x[e - 1] + sigma * gaussian rng
                    x)
            let g = GroupDiffusion.compute trajectories
            // Short lags, where each lag averages many independent displacements (stated tolerance: 10%).
            let alpha = Fits.anomalousExponent g.Lags g.Msd 1 50
            Expect.isLessThan (abs (alpha.Slope - 1.0)) 0.1 (sprintf "α = %g" alpha.Slope)
            let d = Fits.diffusionConstant 1.0 g.Lags g.DriftCorrectedMsd 1 50
            Expect.isLessThan (abs (d.Slope / (sigma * sigma / 2.0) - 1.0)) 0.1 (sprintf "D = %g, σ²/2 = %g" d.Slope (sigma * sigma / 2.0))
            Expect.equal (d.RangeFrom, d.RangeTo, d.Points) (1.0, 50.0, 50) "the fit states its range"
    ]

[<Tests>]
let fftTests =
    testList "fft" [
        testCase "the in-place FFT equals MathNet's transform, and inverts" <| fun () ->
            let rng = Random(9)
            for size in [ 1; 2; 8; 64; 1024 ] do
                let re = Array.init size (fun _ -> rng.NextDouble() - 0.5)
                let im = Array.init size (fun _ -> rng.NextDouble() - 0.5)
                let reference = Array.init size (fun i -> Numerics.Complex(re[i], im[i]))
                MathNet.Numerics.IntegralTransforms.Fourier.Forward(reference, MathNet.Numerics.IntegralTransforms.FourierOptions.NoScaling)
                let r, i = Array.copy re, Array.copy im
                Fft.transformInPlace r i -1.0
                for k in 0 .. size - 1 do
                    Expect.floatClose Accuracy.high r[k] reference[k].Real (sprintf "re %d of %d" k size)
                    Expect.floatClose Accuracy.high i[k] reference[k].Imaginary (sprintf "im %d of %d" k size)
                Fft.transformInPlace r i 1.0
                for k in 0 .. size - 1 do
                    Expect.floatClose Accuracy.high (r[k] / float size) re[k] "round trip"
    ]

[<Tests>]
let groupTests =
    testList "group msd" [
        testPropertyWithConfig config "a group's MSD (one inverse FFT, two weights per forward FFT) is the mean of its weights' direct MSDs" <| fun (x: float[]) ->
            let y = x |> Array.mapi (fun i v -> v * 0.5 + float (i % 7))
            let z = x |> Array.map (fun v -> -v)
            // An odd count, so one forward transform carries a single trajectory.
            let group = [| x; y; z |]
            let fast = Diffusion.groupMsd group
            let direct = group |> Array.map Diffusion.msdDirect
            let expected = Array.init fast.Length (fun i -> direct |> Array.averageBy (fun d -> d[i]))
            let scale = group |> Array.averageBy (fun t -> t |> Array.map (fun v -> v - Array.average t) |> Array.averageBy (fun v -> v * v))
            fast.Length = x.Length - 1
            && Array.forall2 (fun (a: float) (b: float) -> abs (a - b) <= 1e-9 * abs b + 1e-12 * scale) fast expected

        testCase "the drift-corrected group curve is the mean of each weight's drift-corrected curve" <| fun () ->
            let rng = Random(3)
            let group = Array.init 4 (fun k -> Array.init 30 (fun e -> float k * 0.3 * float e + rng.NextDouble()))
            let g = GroupDiffusion.compute group
            let expected = Array.init 29 (fun i -> group |> Array.averageBy (fun x -> (Diffusion.driftCorrected x (Diffusion.msdDirect x))[i]))
            for i in 0 .. 28 do Expect.floatClose Accuracy.high g.DriftCorrectedMsd[i] expected[i] (sprintf "lag %d" (i + 1))

        testCase "trajectories of different lengths are refused" <| fun () ->
            Expect.throwsT<ArgumentException> (fun () -> Diffusion.groupMsd [| [| 1.0; 2.0 |]; [| 1.0; 2.0; 3.0 |] |] |> ignore) "lengths"
    ]

module Thermo.Analysis.Tests.EngineTests

open System
open System.IO
open Expecto
open Thermo.Analysis
open Thermo.Analysis.Format
open Thermo.Analysis.Run
open Thermo.Analysis.Physics
open Thermo.Analysis.Statistics
open Thermo.Analysis.Engine
open Thermo.Analysis.Tests.Generators

/// Writes a synthetic run: layer "a" (weight 3×4, bias 3) and "b" (weight 2×5), random walks over `epochs` + 1 snapshots.
let private syntheticRun (dir: string) (epochs: int) =
    let rng = Random(5)
    let walk (n: int) = Array.init n (fun _ -> float32 (rng.NextDouble()))
    let mutable a, bias, b = walk 12, walk 3, walk 10
    let step (x: float32[]) scale = x |> Array.map (fun v -> v + float32 ((rng.NextDouble() - 0.4) * scale))
    let values = ResizeArray()
    for e in 0..epochs do
        if e > 0 then
            a <- step a 0.1
            bias <- step bias 0.1
            b <- step b 0.01
        values.Add(Array.copy a, Array.copy b)
        let snapshot =
            { Epoch = e; Step = int64 e
              Tensors =
                [| { Layer = "a"; Tensor = "weight"; Shape = [| 3; 4 |]; Values = Array.copy a }
                   { Layer = "a"; Tensor = "bias"; Shape = [| 3 |]; Values = Array.copy bias }
                   { Layer = "b"; Tensor = "weight"; Shape = [| 2; 5 |]; Values = Array.copy b } |] }
        SnapshotWriter.write SnapshotFileFormat.Parquet (Path.Combine(dir, "snapshots", SnapshotSchema.fileName SnapshotFileFormat.Parquet e)) snapshot
    declareRun dir epochs
    values.ToArray()

[<Tests>]
let tests =
    testList "engine" [
        testCase "per-unit temperatures equal the pure kinematics over the same window" <| fun () ->
            use dir = new TempDirectory()
            let values = syntheticRun dir.Path 12
            let result = Engine.analyze dir.Path { AnalysisOptions.Default with Window = Last 8 }
            Expect.equal (result.Window.From, result.Window.To) (4, 12) "last:8 of 12"
            let windowA = values[4..12] |> Array.map fst
            let motion = Kinematics.weightMotion 1.0 windowA
            for unit in 0..2 do
                let expected = Kinematics.groupTemperature Physics.Default motion (Kinematics.unitIndices 4 unit)
                let actual = result.Groups |> Array.find (fun g -> g.Key.Layer = "a" && g.Key.Unit = unit)
                Expect.floatClose Accuracy.veryHigh actual.Temperature.Temperature expected.Temperature "T"
                Expect.floatClose Accuracy.veryHigh actual.Temperature.Oscillation expected.Oscillation "T_osc"
                Expect.floatClose Accuracy.veryHigh actual.L1Norm (Kinematics.unitL1Norms 4 windowA[8]).[unit] "L1 at the window's end"
            let ranks = result.Groups |> Array.filter (fun g -> g.Key.Layer = "a") |> Array.sortBy (fun g -> g.Rank)
            Expect.isTrue (ranks |> Array.pairwise |> Array.forall (fun (h, c) -> h.Temperature.Temperature >= c.Temperature.Temperature)) "rank 1 is hottest"
            // MSD of the first layer's units is the mean of the weights' MSD curves
            let d = result.Diffusion |> Array.find (fun d -> d.Key.Unit = 1)
            let expectedMsd = Array.init 4 (fun i -> Diffusion.msdDirect (windowA |> Array.map (fun x -> float x[4 + i])))
            Expect.floatClose Accuracy.high d.Curves.Msd[2] (expectedMsd |> Array.averageBy (fun m -> m[2])) "lag 3"
            Expect.equal result.Instantaneous.Keys.Length (2 + 5) "2 layers + 5 units of instantaneous series"

        testCase "a run snapshotted every K epochs is analysed with Δt = K, and a window's ends must be snapshots" <| fun () ->
            use dir = new TempDirectory()
            let values = syntheticRun dir.Path 12
            // As `--snapshot-every 3`: epochs 0, 3, 6, 9, 12 remain.
            for e in 0..12 do
                if e % 3 <> 0 then File.Delete(Path.Combine(dir.Path, "snapshots", SnapshotSchema.fileName SnapshotFileFormat.Parquet e))
            declareRunWith dir.Path 12 3 0 1
            let result = Engine.analyze dir.Path { AnalysisOptions.Default with Window = Last 9 }
            Expect.equal (result.Window.From, result.Window.To, result.Window.Interval, result.Window.Velocities) (3, 12, 3, 3) "last:9 = snapshots 3, 6, 9, 12"
            let windowA = [| 3; 6; 9; 12 |] |> Array.map (fun e -> fst values[e])
            let physics = { Physics.Default with Dt = 3.0 }
            let motion = Kinematics.weightMotion 3.0 windowA
            for unit in 0..2 do
                let expected = Kinematics.groupTemperature physics motion (Kinematics.unitIndices 4 unit)
                let actual = result.Groups |> Array.find (fun g -> g.Key.Layer = "a" && g.Key.Unit = unit)
                Expect.floatClose Accuracy.veryHigh actual.Temperature.Temperature expected.Temperature "T with Δt = 3"
                // the naive oracle: ½⟨((w(e) − w(e − 3)) / 3)²⟩ over the unit's weights and the window's velocities
                let naive =
                    [ for k in 1..3 do for i in unit * 4 .. unit * 4 + 3 -> 0.5 * (float (windowA[k][i] - windowA[k - 1][i]) / 3.0) ** 2.0 ] |> List.average
                Expect.floatClose Accuracy.high actual.Temperature.Temperature naive "naive oracle"
            let epochs = result.Instantaneous[0]
            Expect.equal epochs.Length 3 "one instantaneous temperature per snapshot interval"
            expectSettingError AnalysisSetting.Window "start 2 (nearest snapshots: 0 or 3)" (fun () -> Engine.analyze dir.Path { AnalysisOptions.Default with Window = Last 10 })
            expectSettingError AnalysisSetting.Window "end 10 (nearest snapshots: 9 or 12)" (fun () -> Engine.analyze dir.Path { AnalysisOptions.Default with Window = Between(3, 10) })
            // As `--epochs 12 --snapshot-every 5`: 0, 5, 10, 12 — the last interval is shorter.
            expectSettingError AnalysisSetting.Window "end the window at 10" (fun () ->
                Window.resolve "run" [| 0; 5; 10; 12 |] None (Between(0, 12)) |> ignore)
            expectSettingError AnalysisSetting.Window "not evenly spaced" (fun () ->
                Window.resolve "run" [| 0; 5; 10; 12; 14 |] None (Between(0, 14)) |> ignore)
            Expect.equal (Window.resolve "run" [| 0; 5; 10; 12 |] None (Between(0, 10))).Interval 5 "0..10 every 5"
            // --epochs 199 --snapshot-every 2: the last gap (198 → 199) is short and divides 2 — an
            // interval change at the end, not missing files.
            let everyTwo = Array.append [| 0 .. 2 .. 198 |] [| 199 |]
            expectSettingError AnalysisSetting.Window "end the window at 198" (fun () -> Window.resolve "run" everyTwo None (Last 9) |> ignore)
            // auto on --epochs 200 --snapshot-every 3 ends at 198, the last evenly spaced snapshot, not 198..200.
            let everyThree = Array.append [| 0 .. 3 .. 198 |] [| 200 |]
            let epochs = [| 0 .. 200 |]
            let flat = epochs |> Array.map (fun e -> 0.1 + 0.001 * float (e % 2))
            let auto = Window.resolve "run" everyThree (Some(epochs, flat, flat |> Array.map (fun v -> 1.0 - v))) Auto
            Expect.equal (auto.From, auto.To, auto.Interval) (3, 198, 3) "auto keeps to evenly spaced snapshots"

        testCase "the engine's temperatures and L1 norms equal the naive oracle's, in both conventions" <| fun () ->
            use dir = new TempDirectory()
            let values = syntheticRun dir.Path 9
            for physics in [ { Physics.Default with Mass = 3.0; Boltzmann = 0.5; Dt = 2.0 }; { Physics.Default with Convention = TemperatureConvention.MeanSquare; Dt = 0.5 } ] do
                let result = Engine.analyze dir.Path { AnalysisOptions.Default with Window = Between(2, 9); Physics = physics }
                let c = KinematicsTests.Oracle.factor physics.Convention physics.Mass physics.Boltzmann
                let window layer = values[2..9] |> Array.map (fun (a, b) -> (if layer = "a" then a else b) |> Array.map float)
                for layer, units, size in [ "a", 3, 4; "b", 2, 5 ] do
                    let x = window layer
                    for unit in 0 .. units - 1 do
                        let indices = Array.init size (fun i -> unit * size + i)
                        let actual = result.Groups |> Array.find (fun g -> g.Key.Layer = layer && g.Key.Unit = unit)
                        let t = KinematicsTests.Oracle.temperature c physics.Dt x indices
                        let drift = KinematicsTests.Oracle.drift c physics.Dt x indices
                        Expect.floatClose Accuracy.veryHigh actual.Temperature.Temperature t (sprintf "T of %s[%d]" layer unit)
                        Expect.floatClose Accuracy.veryHigh actual.Temperature.Drift drift (sprintf "T_drift of %s[%d]" layer unit)
                        Expect.floatClose Accuracy.veryHigh actual.L1Norm (KinematicsTests.Oracle.l1 (indices |> Array.map (fun k -> x[x.Length - 1].[k]))) (sprintf "L1 of %s[%d]" layer unit)
                    let whole = result.Layers |> Array.find (fun g -> g.Key.Layer = layer)
                    Expect.floatClose Accuracy.veryHigh whole.Temperature.Temperature (KinematicsTests.Oracle.temperature c physics.Dt x (Array.init (units * size) id)) (sprintf "T of layer %s" layer)
                    Expect.floatClose Accuracy.veryHigh whole.L1Norm (KinematicsTests.Oracle.l1 x[x.Length - 1]) (sprintf "L1 of layer %s" layer)

        testCase "the layer grouping and the bias option" <| fun () ->
            use dir = new TempDirectory()
            let _ = syntheticRun dir.Path 6
            let layers = Engine.analyze dir.Path { AnalysisOptions.Default with Window = Between(1, 6); Grouping = Grouping.Layer; Layers = Some [| "b" |] }
            Expect.equal (layers.Groups |> Array.map (fun g -> g.Key.Layer, g.Temperature.Weights)) [| "b", 10 |] "one group of 10 weights"
            let withBias = Engine.analyze dir.Path { AnalysisOptions.Default with Window = Between(1, 6); IncludeBias = true; Layers = Some [| "a" |] }
            Expect.equal (withBias.Groups |> Array.map (fun g -> g.Temperature.Weights)) [| 5; 5; 5 |] "4 weights + 1 bias per unit"

        testCase "units that straddle the engine's 65,536-value chunks: every grouping equals the pure kinematics" <| fun () ->
            use dir = new TempDirectory()
            // 7 units of 30,001 weights (210,007 values: four chunks, unit edges nowhere near chunk edges),
            // then a bias and a small layer, so ranges cross chunk boundaries in the middle of units.
            let rng = Random(11)
            let units, unitSize = 7, 30001
            let mutable w = Array.init (units * unitSize) (fun _ -> float32 (rng.NextDouble() - 0.5))
            let mutable c = Array.init 6 (fun _ -> float32 (rng.NextDouble()))
            let history = ResizeArray()
            for e in 0..4 do
                if e > 0 then
                    w <- w |> Array.mapi (fun i v -> v + float32 ((rng.NextDouble() - 0.5) * 0.01 * float (1 + i / unitSize)))
                    c <- c |> Array.map (fun v -> v + float32 ((rng.NextDouble() - 0.3) * 0.1))
                history.Add(Array.copy w, Array.copy c)
                let snapshot =
                    { Epoch = e; Step = int64 e
                      Tensors =
                        [| { Layer = "big"; Tensor = "weight"; Shape = [| units; unitSize |]; Values = Array.copy w }
                           { Layer = "big"; Tensor = "bias"; Shape = [| units |]; Values = Array.zeroCreate units }
                           { Layer = "small"; Tensor = "weight"; Shape = [| 2; 3 |]; Values = Array.copy c } |] }
                SnapshotWriter.write SnapshotFileFormat.Parquet (Path.Combine(dir.Path, "snapshots", SnapshotSchema.fileName SnapshotFileFormat.Parquet e)) snapshot
            declareRun dir.Path (history.Count - 1)
            let big = history.ToArray() |> Array.map fst
            let motion = Kinematics.weightMotion 1.0 big
            let byUnit = Engine.analyze dir.Path { AnalysisOptions.Default with Window = Between(0, 4); MsdLayers = Some [| "big" |] }
            for unit in 0 .. units - 1 do
                let expected = Kinematics.groupTemperature Physics.Default motion (Kinematics.unitIndices unitSize unit)
                let actual = byUnit.Groups |> Array.find (fun g -> g.Key.Layer = "big" && g.Key.Unit = unit)
                Expect.floatClose Accuracy.veryHigh actual.Temperature.Temperature expected.Temperature (sprintf "T of unit %d" unit)
                Expect.floatClose Accuracy.veryHigh actual.Temperature.Drift expected.Drift (sprintf "T_drift of unit %d" unit)
                Expect.floatClose Accuracy.veryHigh actual.L1Norm (Kinematics.unitL1Norms unitSize big[4]).[unit] (sprintf "L1 of unit %d" unit)
            let layer = Kinematics.groupTemperature Physics.Default motion [| 0 .. units * unitSize - 1 |]
            Expect.floatClose Accuracy.veryHigh (byUnit.Layers |> Array.find (fun l -> l.Key.Layer = "big")).Temperature.Temperature layer.Temperature "layer T"
            let d = byUnit.Diffusion |> Array.find (fun d -> d.Key.Unit = 5)
            let expectedMsd = Array.init unitSize (fun i -> Diffusion.msdDirect (big |> Array.map (fun x -> float x[5 * unitSize + i])))
            Expect.floatClose Accuracy.high d.Curves.Msd[1] (expectedMsd |> Array.averageBy (fun m -> m[1])) "MSD of a straddling unit, lag 2"
            let byWeight = Engine.analyze dir.Path { AnalysisOptions.Default with Window = Between(0, 4); Grouping = Grouping.Weight; Layers = Some [| "big" |]; MsdLayers = Some [||] }
            for k in [ 0; 65535; 65536; 131071; 131072; 210006 ] do
                let expected = Kinematics.groupTemperature Physics.Default motion [| k |]
                let actual = byWeight.Groups |> Array.find (fun g -> g.Key.Unit = k / unitSize && g.Key.Weight = k % unitSize)
                Expect.floatClose Accuracy.veryHigh actual.Temperature.Temperature expected.Temperature (sprintf "T of weight %d" k)
                Expect.floatClose Accuracy.veryHigh actual.Temperature.Oscillation expected.Oscillation (sprintf "T_osc of weight %d" k)

        testCase "a window outside the run, an unknown layer and missing epochs are named" <| fun () ->
            use dir = new TempDirectory()
            let _ = syntheticRun dir.Path 5
            expectSettingError AnalysisSetting.Window "last:9 is longer than the run (snapshots 0..5)" (fun () -> Engine.analyze dir.Path { AnalysisOptions.Default with Window = Last 9 })
            expectSettingError AnalysisSetting.Window "2:7 lies outside the run (snapshots 0..5)" (fun () -> Engine.analyze dir.Path { AnalysisOptions.Default with Window = Between(2, 7) })
            expectSettingError AnalysisSetting.Layers "unknown layer 'c' (layers with weights: a, b)" (fun () -> Engine.analyze dir.Path { AnalysisOptions.Default with Window = Last 3; Layers = Some [| "c" |] })
            expectSettingError AnalysisSetting.Layers "names layer 'b' twice" (fun () -> Engine.analyze dir.Path { AnalysisOptions.Default with Window = Last 3; Layers = Some [| "b"; "a"; "b" |] })
            expectSettingError AnalysisSetting.Window "auto needs metrics.parquet; pass last:N or a:b" (fun () -> Engine.analyze dir.Path AnalysisOptions.Default)
            expectSettingError AnalysisSetting.MsdLayers "names 'x', which is not analysed (analysed: a, b)" (fun () ->
                Engine.analyze dir.Path { AnalysisOptions.Default with Window = Last 3; MsdLayers = Some [| "x" |] })
            expectSettingError AnalysisSetting.FitLags "1:9 must lie in 1..3 with at least two lags" (fun () ->
                Engine.analyze dir.Path (AnalysisOptions.Default.WithWindow(Last 3).WithFitLags(Nullable<struct (int * int)>(struct (1, 9)))))
            File.Delete(Path.Combine(dir.Path, "snapshots", "epoch=00002.parquet"))
            File.Delete(Path.Combine(dir.Path, "snapshots", "epoch=00003.parquet"))
            expectArtifactError "lacks the snapshots of epochs 2, 3 (run.json declares one every 1 epoch through epoch 5)" (fun () -> Engine.analyze dir.Path { AnalysisOptions.Default with Window = Last 2 })
            // Without the manifest the files alone set the spacing: 4..5 is an even window then.
            let inferred = Engine.analyze dir.Path { AnalysisOptions.Default with Window = Last 1; Spacing = SnapshotSpacing.InferredFromFiles }
            Expect.stringContains inferred.Window.Rule SnapshotSeries.InferredNote "the rule says the spacing was inferred"

        testCase "NaN weights are named with their layer and epoch" <| fun () ->
            use dir = new TempDirectory()
            let _ = syntheticRun dir.Path 4
            let path = Path.Combine(dir.Path, "snapshots", "epoch=00003.parquet")
            let s = SnapshotReader.readFile path
            s.Tensors[2].Values[7] <- nanf
            SnapshotWriter.write SnapshotFileFormat.Parquet path s
            expectArtifactError "b.weight holds NaN at flat index 7 (epoch 3)" (fun () -> Engine.analyze dir.Path { AnalysisOptions.Default with Window = Last 4 })

        testCase "Arrow IPC snapshots stream to the same results as Parquet ones" <| fun () ->
            use parquet = new TempDirectory()
            use arrow = new TempDirectory()
            let _ = syntheticRun parquet.Path 5
            for e in 0..5 do
                let s = SnapshotReader.readFile (Path.Combine(parquet.Path, "snapshots", SnapshotSchema.fileName SnapshotFileFormat.Parquet e))
                SnapshotWriter.write SnapshotFileFormat.Arrow (Path.Combine(arrow.Path, "snapshots", SnapshotSchema.fileName SnapshotFileFormat.Arrow e)) s
            declareRun arrow.Path 5
            let options = { AnalysisOptions.Default with Window = Last 4; IncludeBias = true }
            let a = Engine.analyze parquet.Path options
            let b = Engine.analyze arrow.Path options
            Expect.equal (b.Groups |> Array.map (fun g -> g.Temperature)) (a.Groups |> Array.map (fun g -> g.Temperature)) "same temperatures"
            Expect.equal (b.Diffusion |> Array.map (fun d -> d.Curves.Msd)) (a.Diffusion |> Array.map (fun d -> d.Curves.Msd)) "same MSD"

        testCase "a truncated snapshot inside the window is named" <| fun () ->
            use dir = new TempDirectory()
            let _ = syntheticRun dir.Path 4
            let path = Path.Combine(dir.Path, "snapshots", "epoch=00003.parquet")
            let bytes = File.ReadAllBytes path
            File.WriteAllBytes(path, bytes[.. bytes.Length / 2])
            expectArtifactError "epoch=00003.parquet" (fun () -> Engine.analyze dir.Path { AnalysisOptions.Default with Window = Last 4 })

        testCase "duplicated epochs are named" <| fun () ->
            use dir = new TempDirectory()
            let _ = syntheticRun dir.Path 3
            let s = SnapshotReader.readFile (Path.Combine(dir.Path, "snapshots", "epoch=00002.parquet"))
            SnapshotWriter.write SnapshotFileFormat.Arrow (Path.Combine(dir.Path, "snapshots", "epoch=00002.arrow")) s
            expectArtifactError "epochs 2 have more than one snapshot file" (fun () -> Engine.analyze dir.Path { AnalysisOptions.Default with Window = Last 3 })

        testCase "a group series holds each group's values flat, finds them by key and compares by value" <| fun () ->
            let keys = [| { Layer = "a"; Unit = -1; Weight = -1 }; { Layer = "a"; Unit = 0; Weight = -1 }; { Layer = "a"; Unit = 1; Weight = -1 } |]
            let series = GroupSeries(keys, 2, [| 1.0; 2.0; 3.0; 4.0; 5.0; 6.0 |])
            Expect.equal series[1] [| 3.0; 4.0 |] "group 1's values"
            Expect.equal (series.Find(fun k -> k.Unit = 1)) [| 5.0; 6.0 |] "unit 1's values"
            Expect.isTrue (series.Equals(GroupSeries(Array.copy keys, 2, [| 1.0; 2.0; 3.0; 4.0; 5.0; 6.0 |]))) "equal values, equal series"
            Expect.isFalse (series.Equals(GroupSeries(keys, 2, [| 1.0; 2.0; 3.0; 4.0; 5.0; 7.0 |]))) "one value differs"
            Expect.throwsT<ArgumentException> (fun () -> GroupSeries(keys, 2, [| 1.0 |]) |> ignore) "values must fill every group"

        testCase "outputs are written as one directory of tables" <| fun () ->
            use dir = new TempDirectory()
            let _ = syntheticRun dir.Path 6
            let result = Engine.analyze dir.Path { AnalysisOptions.Default with Window = Last 6 }
            AnalysisOutput.write result
            AnalysisOutput.write result // a second write replaces the first whole
            let analysis = Path.Combine(dir.Path, "analysis")
            Expect.sequenceEqual (Directory.GetFiles analysis |> Array.map Path.GetFileName |> Array.sort) [| "fits.parquet"; "instantaneous.parquet"; "msd.parquet"; "temperature.parquet" |] "four tables"
            Expect.isEmpty (Directory.GetDirectories dir.Path |> Array.filter (fun d -> Path.GetFileName(d).StartsWith ".")) "no temporary directories left"
            // instantaneous.parquet is written batch by batch from the flat series: every group's value
            // at every time of the window, in order, with its layer, unit and interval
            let path = Path.Combine(analysis, "instantaneous.parquet")
            let table = AnalysisTables.readInstantaneous path
            let series = result.Instantaneous
            let n = series.Intervals
            Expect.equal table.Temperature series.Values "every T_G(e)"
            Expect.equal table.Layer (series.Keys |> Array.collect (fun k -> Array.create n k.Layer)) "each row's layer"
            Expect.equal table.Unit (series.Keys |> Array.collect (fun k -> Array.create n k.Unit)) "each row's unit"
            Expect.equal table.Time (Array.concat (Array.create series.Keys.Length result.Window.Times[1..])) "each row's epoch"
            Expect.equal table.Dt (Array.concat (Array.create series.Keys.Length result.Window.Intervals)) "each row's interval"
            // A table whose dt is not an interval is refused, naming it: readers weight T(e) by it.
            let columns = Tables.read path "instantaneous" |> List.map (function Int32Column("dt", v) -> (v[2] <- 0; Int32Column("dt", v)) | c -> c)
            Tables.write path "instantaneous" columns
            expectArtifactError "column dt holds 0 at row 2" (fun () -> AnalysisTables.readInstantaneous path)
            let temperature = Tables.read (Path.Combine(analysis, "temperature.parquet")) "temperature"
            match temperature |> List.find (fun c -> c.Name = "window_from") with
            | Int32Column(_, v) -> Expect.isTrue (v |> Array.forall ((=) 0)) "the window is stated in every row"
            | _ -> failtest "window_from is int32"
    ]

[<Tests>]
let windowTests =
    testList "equilibrium window" [
        testCase "specs parse and bad ones are named" <| fun () ->
            Expect.equal (Window.parse "auto") (Ok Auto) "auto"
            Expect.equal (Window.parse "last:150") (Ok(Last 150)) "last"
            Expect.equal (Window.parse "50:200") (Ok(Between(50, 200))) "range"
            for bad in [ "last:0"; "last:x"; "5:5"; "9:3"; "soon" ] do
                Expect.isError (Window.parse bad) bad

        testCase "last:N is the last N velocities" <| fun () ->
            let w = Window.resolve "run" [| 0 .. 200 |] None (Last 150)
            Expect.equal (w.From, w.To, w.Velocities) (50, 200, 150) "the paper's window"

        testCase "auto starts after a decaying loss has flattened into noise" <| fun () ->
            let rng = Random(3)
            let epochs = [| 1..60 |]
            let noise () = (rng.NextDouble() - 0.5) * 0.01
            let loss = epochs |> Array.map (fun e -> (if e < 20 then 1.0 - 0.045 * float e else 0.1) + noise ())
            let accuracy = epochs |> Array.map (fun e -> (if e < 20 then 0.5 + 0.02 * float e else 0.9) + noise ())
            match Window.findEquilibrium epochs loss accuracy with
            | Some start -> Expect.isTrue (start >= 20 && start <= 50) (sprintf "start %d at or after the knee at 20, leaving at least 10 epochs" start)
            | None -> failtest "no equilibrium found"
            Expect.isNone (Window.findEquilibrium epochs (epochs |> Array.map (fun e -> 1.0 / float e)) (epochs |> Array.map float)) "a steady trend never equilibrates"
    ]

/// The per-step analysis (`analyze --steps`), checked against DuckDB computing the same temperatures
/// in SQL straight from the step snapshot files.
module StepAnalysisTests =
    open DuckDB.NET.Data

    /// Step snapshots of layers "a" (weight 3×4, bias 3) and "b" (weight 2×5): 3 epochs × 4 steps, global steps 9..20.
    let private stepRun (dir: string) =
        let rng = Random(11)
        let walk n = Array.init n (fun _ -> float32 (rng.NextDouble()))
        let mutable a, bias, b = walk 12, walk 3, walk 10
        let step (x: float32[]) scale = x |> Array.map (fun v -> v + float32 ((rng.NextDouble() - 0.5) * scale))
        for s in 9..20 do
            a <- step a 0.1
            bias <- step bias 0.1
            b <- step b 0.02
            let epoch = 8 + (s - 9) / 4
            let snapshot =
                { Epoch = epoch; Step = int64 s
                  Tensors =
                    [| { Layer = "a"; Tensor = "weight"; Shape = [| 3; 4 |]; Values = Array.copy a }
                       { Layer = "a"; Tensor = "bias"; Shape = [| 3 |]; Values = Array.copy bias }
                       { Layer = "b"; Tensor = "weight"; Shape = [| 2; 5 |]; Values = Array.copy b } |] }
            SnapshotWriter.write SnapshotFileFormat.Parquet (Path.Combine(RunLayout.stepSnapshots dir, SnapshotSchema.stepFileName SnapshotFileFormat.Parquet epoch (int64 s))) snapshot
        // Epochs 3..5 of a 5-epoch run at 4 steps an epoch: global steps 9..20.
        declareRunWith dir 5 1 3 4

    let private sql (query: string) =
        use connection = new DuckDBConnection("DataSource=:memory:")
        connection.Open()
        use command = connection.CreateCommand()
        command.CommandText <- query
        use reader = command.ExecuteReader()
        [ while reader.Read() do yield reader.GetString 0, reader.GetDouble 1 ] |> Map.ofList

    [<Tests>]
    let tests =
        testList "per-step analysis" [
            testCase "layer temperatures over the last N steps equal DuckDB's SQL over the step files" <| fun () ->
                use dir = new TempDirectory()
                stepRun dir.Path
                let result = Engine.analyzeSteps dir.Path { AnalysisOptions.Default with Window = Last 6 }
                Expect.equal (result.TimeUnit, result.Window.From, result.Window.To, result.Window.Velocities) (TimeUnit.Step, 14, 20, 6) "steps 14..20"
                let files = Path.Combine(RunLayout.stepSnapshots dir.Path, "*.parquet").Replace("'", "''")
                let expected =
                    sql $"""
                        WITH s AS (SELECT step, layer, tensor, unit, "offset", value FROM read_parquet('{files}') WHERE tensor = 'weight'),
                             v AS (SELECT now.layer, now.value - before.value AS v
                                   FROM s now JOIN s before
                                     ON now.layer = before.layer AND now.tensor = before.tensor AND now.unit = before.unit
                                    AND now."offset" = before."offset" AND before.step = now.step - 1
                                   WHERE now.step > 14 AND now.step <= 20)
                        SELECT layer, avg(0.5 * v * v) FROM v GROUP BY layer"""
                Expect.equal expected.Count 2 "two layers in SQL"
                for layer in result.Layers do
                    Expect.floatClose Accuracy.high layer.Temperature.Temperature expected[layer.Key.Layer] (sprintf "T of %s" layer.Key.Layer)
                AnalysisOutput.write result
                let columns = Table.Read(Path.Combine(RunLayout.stepAnalysis dir.Path, RunLayout.TemperatureFile), "temperature")
                Expect.allEqual (Table.GetStrings(columns, "time_unit", "temperature")) "step" "time_unit = step"
                Expect.isFalse (Directory.Exists(RunLayout.analysis dir.Path)) "the epoch analysis is left alone"

            testCase "the fits table's Spearman rows carry the units compared and a p-value" <| fun () ->
                use dir = new TempDirectory()
                stepRun dir.Path
                let result = Engine.analyzeSteps dir.Path AnalysisOptions.Default
                AnalysisOutput.write result
                let path = Path.Combine(RunLayout.stepAnalysis dir.Path, RunLayout.FitsFile)
                let c = Table.Read(path, "fits")
                let quantity, layer = Table.GetStrings(c, "quantity", path), Table.GetStrings(c, "layer", path)
                let value, points, p = Table.GetDoubles(c, "value", path), Table.GetInts(c, "points", path), Table.GetDoubles(c, "p_value", path)
                let rows = [ for i in 0 .. quantity.Length - 1 do if quantity[i] = "spearman_temperature_l1" then yield i ]
                Expect.equal rows.Length 2 "one Spearman row per layer"
                for i in rows do
                    Expect.equal points[i] (if layer[i] = "a" then 3 else 2) "the layer's units"
                    if points[i] >= 3 then Expect.floatClose Accuracy.high p[i] (PairedTests.spearmanPValue value[i] points[i]) "p-value"
                    else Expect.isTrue (Double.IsNaN p[i]) "no p-value below 3 units"

            testCase "auto over steps is every step snapshot; a run without step snapshots is named" <| fun () ->
                use dir = new TempDirectory()
                stepRun dir.Path
                let result = Engine.analyzeSteps dir.Path AnalysisOptions.Default
                Expect.equal (result.Window.From, result.Window.To) (9, 20) "all steps"
                Expect.stringContains result.Window.Rule "every step snapshot" "rule says so"
                use empty = new TempDirectory()
                Directory.CreateDirectory(RunLayout.snapshots empty.Path) |> ignore
                expectArtifactError "no per-step snapshots" (fun () -> Engine.analyzeSteps empty.Path AnalysisOptions.Default)
        ]

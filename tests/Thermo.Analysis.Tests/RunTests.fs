module Thermo.Analysis.Tests.RunTests

open System
open System.IO
open Expecto
open Thermo.Analysis
open Thermo.Analysis.Format
open Thermo.Analysis.Run
open Thermo.Analysis.Physics
open Thermo.Analysis.Engine
open Thermo.Analysis.Tests.Generators

let private metricsRows =
    [| for e in 1..3 ->
        { MetricsRow.Epoch = e; MetricsRow.Step = int64 (e * 469); MetricsRow.TrainLoss = 1.0 / float e; MetricsRow.TrainAccuracy = 0.9; MetricsRow.TestLoss = 0.5 / float e
          MetricsRow.TestAccuracy = 0.8 + 0.01 * float e; MetricsRow.Lr = 0.01; MetricsRow.BatchSize = 128; MetricsRow.TrainSeconds = 1.5; MetricsRow.EvalSeconds = 0.25
          MetricsRow.SnapshotSeconds = 0.125; MetricsRow.ImagesPerSecond = 40000.0 } |]

let private noiseRows =
    [| for e in 1..2 do
         for l in [ "conv1"; "fc" ] ->
             { GradientNoiseRow.Epoch = e; GradientNoiseRow.Layer = l; GradientNoiseRow.Mean = 0.1 / float e; GradientNoiseRow.Std = 0.01; GradientNoiseRow.Batches = 469 } |]

/// A run with snapshots 0..5 of layers a (3 units of 4, with bias) and b (2 units of 5).
let private analysedRun (dir: string) =
    let rng = Random(9)
    for e in 0..5 do
        let t l n shape = { Layer = l; Tensor = (if Array.length shape = 1 then "bias" else "weight"); Shape = shape; Values = Array.init n (fun _ -> float32 (rng.NextDouble())) }
        let snapshot = { Epoch = e; Step = int64 e; Tensors = [| t "a" 12 [| 3; 4 |]; t "a" 3 [| 3 |]; t "b" 10 [| 2; 5 |] |] }
        SnapshotWriter.write SnapshotFileFormat.Parquet (Path.Combine(RunLayout.snapshots dir, SnapshotSchema.fileName SnapshotFileFormat.Parquet e)) snapshot
    declareRun dir 5
    let result = Engine.analyze dir { AnalysisOptions.Default with Window = Last 4 }
    AnalysisOutput.write result
    result

[<Tests>]
let tests =
    testList "run files" [
        testCase "RunLayout spells every path of a run directory" <| fun () ->
            let run = Path.Combine("runs", "r1")
            Expect.equal (RunLayout.manifest run) (Path.Combine(run, "run.json")) "manifest"
            Expect.equal (RunLayout.metrics run) (Path.Combine(run, "metrics.parquet")) "metrics"
            Expect.equal (RunLayout.gradNoise run) (Path.Combine(run, "gradnoise.parquet")) "gradient noise"
            Expect.equal (RunLayout.snapshots run) (Path.Combine(run, "snapshots")) "snapshots"
            Expect.equal (RunLayout.stepSnapshots run) (Path.Combine(run, "snapshots", "steps")) "step snapshots"
            Expect.equal (RunLayout.checkpoints run) (Path.Combine(run, "checkpoint")) "checkpoints"
            Expect.equal (RunLayout.checkpointName 7) (Path.Combine("checkpoint", "epoch=00007")) "a checkpoint as the manifest names it"
            Expect.equal (RunLayout.analysis run) (Path.Combine(run, RunLayout.AnalysisDirectory)) "analysis"
            Expect.equal (RunLayout.temperature run) (Path.Combine(run, "analysis", "temperature.parquet")) "temperature table"
            Expect.equal (RunLayout.analysisTable run RunLayout.MsdFile) (Path.Combine(run, "analysis", "msd.parquet")) "any analysis table"
            Expect.sequenceEqual RunLayout.analysisFiles [| "temperature.parquet"; "instantaneous.parquet"; "msd.parquet"; "fits.parquet" |] "the analysis files"
            Expect.equal (RunLayout.pruningResults run) (Path.Combine(run, "pruning", "results.parquet")) "pruning results"
            Expect.equal (RunLayout.pruningCurves run) (Path.Combine(run, "pruning", "curves.parquet")) "pruning curves"
            Expect.equal (RunLayout.pruningTable run) (Path.Combine(run, "pruning", "table.md")) "pruning table"
            Expect.equal (RunLayout.report run) (Path.Combine(run, "report")) "the run's report"
            Expect.equal (RunLayout.reportBeside run) (Path.Combine(Path.GetFullPath "runs", "report")) "the report beside the runs"

        testCase "MetricsTable writes the bytes the trainer's column list writes, and reads them back" <| fun () ->
            use dir = new TempDirectory()
            MetricsTable.write (dir.File "typed.parquet") metricsRows
            // the trainer's list today (Thermo.Trainer/Training/TrainingRun.cs, WriteMetrics)
            let r = metricsRows
            Tables.write (dir.File "trainer.parquet") "metrics"
                [ Int32Column("epoch", r |> Array.map (fun m -> m.Epoch)); Int64Column("step", r |> Array.map (fun m -> m.Step))
                  Float64Column("train_loss", r |> Array.map (fun m -> m.TrainLoss)); Float64Column("train_accuracy", r |> Array.map (fun m -> m.TrainAccuracy))
                  Float64Column("test_loss", r |> Array.map (fun m -> m.TestLoss)); Float64Column("test_accuracy", r |> Array.map (fun m -> m.TestAccuracy))
                  Float64Column("lr", r |> Array.map (fun m -> m.Lr)); Int32Column("batch_size", r |> Array.map (fun m -> m.BatchSize))
                  Float64Column("train_seconds", r |> Array.map (fun m -> m.TrainSeconds)); Float64Column("eval_seconds", r |> Array.map (fun m -> m.EvalSeconds))
                  Float64Column("snapshot_seconds", r |> Array.map (fun m -> m.SnapshotSeconds)); Float64Column("images_per_second", r |> Array.map (fun m -> m.ImagesPerSecond)) ]
            Expect.sequenceEqual (File.ReadAllBytes(dir.File "typed.parquet")) (File.ReadAllBytes(dir.File "trainer.parquet")) "same bytes"
            Expect.sequenceEqual (MetricsTable.read (dir.File "typed.parquet")) metricsRows "rows read back"
            let curves = MetricsTable.readTestCurves (dir.File "typed.parquet")
            Expect.sequenceEqual curves.TestLoss (metricsRows |> Array.map (fun m -> m.TestLoss)) "test curves"

        testCase "a metrics table without a column is named by file and column" <| fun () ->
            use dir = new TempDirectory()
            let path = dir.File "metrics.parquet"
            Tables.write path MetricsTable.Name [ Int32Column("epoch", [| 1 |]); Float64Column("test_loss", [| 0.5 |]) ]
            expectArtifactError "metrics.parquet: no column 'test_accuracy'" (fun () -> MetricsTable.readTestCurves path)
            Tables.write path MetricsTable.Name [ Int32Column("epoch", [| 1 |]); Float64Column("test_loss", [| 0.5 |]); Int32Column("test_accuracy", [| 1 |]) ]
            expectArtifactError "column 'test_accuracy' is not of type Double" (fun () -> MetricsTable.readTestCurves path)

        testCase "GradNoiseTable writes the bytes the trainer's column list writes, and reads them back" <| fun () ->
            use dir = new TempDirectory()
            GradNoiseTable.write (dir.File "typed.parquet") noiseRows
            let r = noiseRows
            Tables.write (dir.File "trainer.parquet") "gradnoise"
                [ Int32Column("epoch", r |> Array.map (fun g -> g.Epoch)); StringColumn("layer", r |> Array.map (fun g -> g.Layer))
                  Float64Column("mean", r |> Array.map (fun g -> g.Mean)); Float64Column("std", r |> Array.map (fun g -> g.Std))
                  Int32Column("batches", r |> Array.map (fun g -> g.Batches)) ]
            Expect.sequenceEqual (File.ReadAllBytes(dir.File "typed.parquet")) (File.ReadAllBytes(dir.File "trainer.parquet")) "same bytes"
            Expect.sequenceEqual (GradNoiseTable.read (dir.File "typed.parquet")) noiseRows "rows read back"
            Expect.sequenceEqual (GradNoiseTable.readMeans (dir.File "typed.parquet")) (noiseRows |> Array.map (fun g -> g.Epoch, g.Layer, g.Mean)) "means"

        testCase "unitTemperatures reads back the analysis of a layer's units" <| fun () ->
            use dir = new TempDirectory()
            let result = analysedRun dir.Path
            let t = AnalysisTables.unitTemperatures dir.Path "a"
            let units = result.Groups |> Array.filter (fun g -> g.Key.Layer = "a") |> Array.sortBy (fun g -> g.Key.Unit)
            Expect.sequenceEqual t.Units [| 0; 1; 2 |] "units"
            Expect.sequenceEqual t.Temperature (units |> Array.map (fun g -> g.Temperature.Temperature)) "T"
            Expect.sequenceEqual t.Drift (units |> Array.map (fun g -> g.Temperature.Drift)) "T_drift"
            Expect.sequenceEqual t.Oscillation (units |> Array.map (fun g -> g.Temperature.Oscillation)) "T_osc"
            Expect.sequenceEqual t.L1Norm (units |> Array.map (fun g -> g.L1Norm)) "L1"
            Expect.equal (t.WindowFrom, t.WindowTo) (1, 5) "window"
            Expect.sequenceEqual (AnalysisTables.unitLayers dir.Path) [| "a"; "b" |] "per-unit layers"

        testCase "unitTemperatures names what is missing or misnumbered" <| fun () ->
            use dir = new TempDirectory()
            expectArtifactError "not analysed (no analysis/temperature.parquet)" (fun () -> AnalysisTables.unitTemperatures dir.Path "a")
            let result = analysedRun dir.Path
            Expect.throwsC (fun () -> AnalysisTables.unitTemperatures dir.Path "c" |> ignore) (fun e ->
                match e with
                | :? SettingException as e ->
                    Expect.equal (e.Setting, e.Run, e.Detail) ("Layer", dir.Path, "layer 'c' has no per-filter temperatures (per-filter layers analysed: a, b)") "the one layer check"
                | e -> failtestf "expected a SettingException, got %O" e)
            // drop unit 1 of layer a: units 0, 2 are not 0..1
            let gapped = { result with Groups = result.Groups |> Array.filter (fun g -> not (g.Key.Layer = "a" && g.Key.Unit = 1)) }
            AnalysisOutput.write gapped
            expectArtifactError "the filters of layer 'a' are not numbered 0..1" (fun () -> AnalysisTables.unitTemperatures dir.Path "a")

        testCase "an artifact fault carries the path at fault, and what was never written says what writes it" <| fun () ->
            use dir = new TempDirectory()
            File.WriteAllText(RunLayout.manifest dir.Path, "[]")
            Expect.throwsC (fun () -> ManifestFile.check dir.Path) (fun e ->
                match e with
                | :? ArtifactException as e ->
                    Expect.equal e.Path (RunLayout.manifest dir.Path) "the manifest is the file at fault"
                    Expect.equal e.Message (RunLayout.manifest dir.Path + ": holds JSON array, not a run manifest object") "the message is unchanged"
                | e -> failtestf "expected an ArtifactException, got %O" e)
            Expect.throwsC (fun () -> SnapshotSeries.listStepFiles dir.Path |> ignore) (fun e ->
                match e with
                | :? NotWrittenException as e ->
                    Expect.equal (e.Path, e.WrittenBy, e.Setting) (dir.Path, "StepSnapshotEpochs", "") "the run, and the setting that writes per-step snapshots"
                    Expect.isFalse (e.Message.Contains "--") "no flag in a library message"
                | e -> failtestf "expected a NotWrittenException, got %O" e)

        testCase "replaceDirectory swaps a whole directory, or leaves the old one" <| fun () ->
            use dir = new TempDirectory()
            let target = dir.File "out"
            Directory.CreateDirectory target |> ignore
            File.WriteAllText(Path.Combine(target, "old.txt"), "old")
            let answer = AtomicFile.replaceDirectory target (fun temp ->
                Expect.isFalse (File.Exists(Path.Combine(temp, "old.txt"))) "a fresh directory"
                File.WriteAllText(Path.Combine(temp, "new.txt"), "new")
                42)
            Expect.equal answer 42 "fill's result"
            Expect.sequenceEqual (Directory.GetFiles target |> Array.map Path.GetFileName) [| "new.txt" |] "only the new files"
            Expect.throwsT<InvalidOperationException> (fun () ->
                AtomicFile.replaceDirectory target (fun temp ->
                    File.WriteAllText(Path.Combine(temp, "half.txt"), "")
                    raise (InvalidOperationException "fill failed"))) "the failure propagates"
            Expect.sequenceEqual (Directory.GetFiles target |> Array.map Path.GetFileName) [| "new.txt" |] "untouched by a failed fill"
            Expect.sequenceEqual (Directory.GetFileSystemEntries dir.Path |> Array.map Path.GetFileName) [| "out" |] "no temporary left"
            AtomicFile.replaceDirectory (dir.File "fresh") (fun temp -> File.WriteAllText(Path.Combine(temp, "x"), "x"))
            Expect.isTrue (File.Exists(Path.Combine(dir.File "fresh", "x"))) "a directory that did not exist"

        testCase "a reader beside a training lists every snapshot the manifest declares" <| fun () ->
            // A writer in the training's order: each epoch's snapshot file, then the manifest that
            // declares it (renamed into place whole). A reader listing the files before reading the
            // manifest would find an epoch declared but not yet listed.
            use dir = new TempDirectory()
            let snapshots = RunLayout.snapshots dir.Path
            Directory.CreateDirectory snapshots |> ignore
            let declareThrough epoch =
                let temp = RunLayout.manifest dir.Path + ".tmp"
                File.WriteAllText(temp, sprintf """{ "config": { "epochs": 100000, "snapshotEvery": 1 }, "status": "Running", "lastCompleteEpoch": %d, "lastStep": %d }""" epoch epoch)
                File.Move(temp, RunLayout.manifest dir.Path, true)
            File.WriteAllBytes(Path.Combine(snapshots, SnapshotSchema.fileName SnapshotFileFormat.Parquet 0), [||])
            declareThrough 0
            let epochs = 400
            // The writer pauses halfway until the reader has read there, so at least one read falls
            // between a file and its manifest's successors however the threads are scheduled.
            use halfway = new Threading.ManualResetEventSlim(false)
            use readHalfway = new Threading.ManualResetEventSlim(false)
            use stop = new Threading.CancellationTokenSource()
            let writer =
                Threading.Tasks.Task.Run(fun () ->
                    for e in 1..epochs do
                        if not stop.IsCancellationRequested then
                            File.WriteAllBytes(Path.Combine(snapshots, SnapshotSchema.fileName SnapshotFileFormat.Parquet e), [||])
                            declareThrough e
                            if e = epochs / 2 then
                                halfway.Set()
                                readHalfway.Wait(TimeSpan.FromMinutes 1.0) |> ignore)
            let mutable partial = 0
            try
                while not writer.IsCompleted do
                    let afterHalfway = halfway.IsSet
                    let files = SnapshotSeries.epochFiles dir.Path SnapshotSpacing.FromManifest
                    Expect.sequenceEqual (files |> Array.map (fun f -> f.Time)) [| 0 .. files.Length - 1 |] "epochs 0.. in order, none skipped"
                    if files.Length > 1 && files.Length <= epochs then partial <- partial + 1
                    if afterHalfway then readHalfway.Set()
            finally
                // A failed read must not leave the writer in the directory being deleted.
                stop.Cancel()
                readHalfway.Set()
                writer.Wait()
            Expect.isGreaterThan partial 0 "a read while the writer wrote"
            Expect.equal (SnapshotSeries.epochFiles dir.Path SnapshotSpacing.FromManifest).Length (epochs + 1) "every epoch at the end"
    ]

[<Tests>]
let runIdentityTests =
    testList "run identity" [
        testCase "runs are named by the shortest path suffix that tells them apart" <| fun () ->
            let root = Path.Combine(Path.GetTempPath(), "runs")
            let p (parts: string list) = Path.Combine(Array.ofList (root :: parts))
            Expect.equal (RunIdentity.names [| p [ "a"; "seed-1" ]; p [ "b"; "seed-1" ]; p [ "c" ] |]) [| "a/seed-1"; "b/seed-1"; "c" |] "two seed-1 runs stay two"
            Expect.equal (RunIdentity.names [| p [ "x"; "seed-1" ]; p [ "x"; "seed-2" ] |]) [| "seed-1"; "seed-2" |] "distinct leaves need no more"
            Expect.equal (RunIdentity.names [| p [ "x"; "seed-1" ]; p [ "x"; "seed-1" ] + "/" |]) [| "seed-1"; "seed-1" |] "the same run twice is one run"
    ]

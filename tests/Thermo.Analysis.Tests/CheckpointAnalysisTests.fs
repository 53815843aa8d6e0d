module Thermo.Analysis.Tests.CheckpointAnalysisTests

open System
open System.IO
open System.Text.Json
open Expecto
open Thermo.Analysis
open Thermo.Analysis.Format
open Thermo.Analysis.Run
open Thermo.Analysis.Physics
open Thermo.Analysis.Engine
open Thermo.Analysis.Checkpoints
open Thermo.Analysis.Tests.Generators

/// The checkpoint series PyTorch wrote (tests/fixtures/pytorch/make_series.py) and its own reading of them.
let private seriesRoot = Path.Combine(repositoryRoot, "tests", "fixtures", "pytorch", "series")
let private badRoot = Path.Combine(repositoryRoot, "tests", "fixtures", "pytorch", "bad")
let private expected = lazy (JsonDocument.Parse(File.ReadAllText(Path.Combine(seriesRoot, "expected.json"))))

let private wholeWindow (name: string) =
    let window = expected.Value.RootElement.GetProperty("series").GetProperty(name).GetProperty("window")
    Between(window[0].GetInt32(), window[1].GetInt32())

let private options (name: string) = { AnalysisOptions.Default with Window = wholeWindow name; MsdLayers = Some [||] }

let private analyseInPlace (name: string) =
    fst (CheckpointAnalysis.analyze [| Path.Combine(seriesRoot, name) |] CheckpointReadOptions.Default false (options name) (fun _ _ -> ()))

/// The `ArtifactException` that `f` raises.
let private artifactFault (f: unit -> 'a) : ArtifactException =
    try
        f () |> ignore
        failtest "expected an ArtifactException"
    with :? ArtifactException as e -> e

/// |a − b| within 1e-9 relative (PyTorch summed in float64 in another order), or both below 1e-20
/// (a tensor that never moves: conv1.bias feeds a batch norm and gets no gradient).
let private close (what: string) (expectedValue: float) (actual: float) =
    if abs expectedValue < 1e-20 && abs actual < 1e-20 then ()
    else Expect.isLessThanOrEqual (abs (actual - expectedValue)) (1e-9 * abs expectedValue) (sprintf "%s: Thermo %.17g, PyTorch %.17g" what actual expectedValue)

let private numbers (e: JsonElement) = [| for v in e.EnumerateArray() -> v.GetDouble() |]

let private seriesNames = [ "plain"; "lightning"; "huggingface"; "sharded"; "sharded_bin"; "bfloat16"; "float16_safetensors"; "ddp"; "compiled" ]

/// Every column of every table of two analysis directories, compared bit for bit (NaN included).
let private sameTables (a: string) (b: string) =
    for file in RunLayout.analysisFiles do
        let read dir = Tables.readAnyKind (Path.Combine(dir, file)) |> fun struct (_, columns) -> columns
        let bits (column: Column) =
            match column with
            | Float64Column(name, v) -> name, v |> Array.map (BitConverter.DoubleToInt64Bits >> string)
            | Float32Column(name, v) -> name, v |> Array.map (BitConverter.SingleToInt32Bits >> string)
            | Int32Column(name, v) -> name, v |> Array.map string
            | Int64Column(name, v) -> name, v |> Array.map string
            | StringColumn(name, v) -> name, v
        Expect.equal (read a |> List.map bits) (read b |> List.map bits) (sprintf "%s identical" file)

[<Tests>]
let tests =
    testList "checkpoint series" [
        for name in seriesNames do
            test (sprintf "%s: per-layer and per-unit temperatures, drift, oscillation and diffusive rates equal PyTorch's" name) {
                let series = expected.Value.RootElement.GetProperty("series").GetProperty(name)
                let result = analyseInPlace name
                Expect.equal (result.TimeUnit = TimeUnit.Step) (series.GetProperty("time_unit").GetString() = "step") "time unit"
                Expect.equal result.Window.Times [| for t in series.GetProperty("times").EnumerateArray() -> t.GetInt32() |] "times"
                let layers = result.Layers |> Array.map (fun l -> l.Key.Layer, l) |> dict
                let series' key = result.Instantaneous.Find(fun k -> k.Layer = key && k.Unit = -1)
                let diffusive key = result.DiffusiveRates.Find(fun k -> k.Layer = key && k.Unit = -1)
                Expect.equal (Set.ofSeq layers.Keys) (Set.ofSeq [ for l in series.GetProperty("layers").EnumerateArray() -> l.GetProperty("layer").GetString() ]) "layers"
                for layer in series.GetProperty("layers").EnumerateArray() do
                    let name = layer.GetProperty("layer").GetString()
                    let weight = layer.GetProperty "weight"
                    let mine = layers[name]
                    close (name + " T") (weight.GetProperty("T").GetDouble()) mine.Temperature.Temperature
                    close (name + " T_drift") (weight.GetProperty("T_drift").GetDouble()) mine.Temperature.Drift
                    close (name + " T_osc") (weight.GetProperty("T_osc").GetDouble()) mine.Temperature.Oscillation
                    close (name + " D") (weight.GetProperty("D").GetDouble()) mine.DiffusiveRate
                    Array.iteri2 (fun i e a -> close (sprintf "%s T(%d)" name i) e a) (numbers (weight.GetProperty "T_inst")) (series' name)
                    Array.iteri2 (fun i e a -> close (sprintf "%s D(%d)" name i) e a) (numbers (weight.GetProperty "D_inst")) (diffusive name)
                    match weight.GetProperty("T_over_lr2") with
                    | lr2 when lr2.ValueKind = JsonValueKind.Array ->
                        let temperatures = series' name
                        Array.iteri (fun i e -> close (sprintf "%s T/η²(%d)" name i) e (temperatures[i] / (result.LearningRates[i] * result.LearningRates[i]))) (numbers lr2)
                    | _ -> ()
                    let units = weight.GetProperty "units"
                    let mineUnits = result.Groups |> Array.filter (fun g -> g.Key.Layer = name) |> Array.sortBy (fun g -> g.Key.Unit)
                    Array.iteri2 (fun u e (g: GroupResult) -> close (sprintf "%s unit %d T" name u) e g.Temperature.Temperature) (numbers (units.GetProperty "T")) mineUnits
                    Array.iteri2 (fun u e (g: GroupResult) -> close (sprintf "%s unit %d T_drift" name u) e g.Temperature.Drift) (numbers (units.GetProperty "T_drift")) mineUnits
                    Array.iteri2 (fun u e (g: GroupResult) -> close (sprintf "%s unit %d T_osc" name u) e g.Temperature.Oscillation) (numbers (units.GetProperty "T_osc")) mineUnits
            }

        test "imported and analysed gives the tables of the analysis in place, to the last bit" {
            use dir = new TempDirectory()
            for name in [ "huggingface"; "plain"; "lightning" ] do
                let input = Path.Combine(seriesRoot, name)
                let result, contents = CheckpointAnalysis.analyze [| input |] CheckpointReadOptions.Default false (options name) (fun _ _ -> ())
                let inPlace = dir.File(name + "-in-place")
                CheckpointAnalysis.writeAnalysis [| input |] inPlace result contents
                let run = dir.File(name + "-run")
                CheckpointAnalysis.import [| input |] CheckpointReadOptions.Default false run (fun _ _ -> ()) |> ignore
                Expect.isTrue (ImportedRun.isImported run) "run.json says imported"
                let imported = Engine.analyze run (options name)
                AnalysisOutput.write imported
                sameTables inPlace (RunLayout.analysis run)
        }

        test "a Thermo run exported as a safetensors series analyses to the same bits" {
            use dir = new TempDirectory()
            let run = dir.File "run"
            let rng = Random 5
            let shapes = [ "conv1", "weight", [| 4; 1; 3; 3 |]; "conv1", "bias", [| 4 |]; "fc", "weight", [| 3; 8 |]; "fc", "bias", [| 3 |] ]
            let values = shapes |> List.map (fun (_, _, shape) -> Array.init (Array.fold (*) 1 shape) (fun _ -> float32 (rng.NextDouble() - 0.5)))
            Directory.CreateDirectory(RunLayout.snapshots run) |> ignore
            declareRun run 6
            let export = dir.File "export"
            Directory.CreateDirectory export |> ignore
            for epoch in 0 .. 6 do
                let current = values |> List.map (Array.map (fun v -> v + float32 (rng.NextDouble() - 0.5) * 0.01f))
                let snapshot =
                    { Epoch = epoch; Step = int64 epoch * 10L
                      Tensors = List.map2 (fun (layer, tensor, shape) v -> { Layer = layer; Tensor = tensor; Shape = shape; Values = v }) shapes current |> List.toArray }
                SnapshotWriter.write SnapshotFileFormat.Parquet (Path.Combine(RunLayout.snapshots run, SnapshotSchema.fileName SnapshotFileFormat.Parquet epoch)) snapshot
                writeSafetensors (Path.Combine(export, sprintf "epoch_%d.safetensors" epoch))
                    [ for t in snapshot.Tensors -> t.Layer + "." + t.Tensor, "F32", t.Shape, t.Values |> Array.collect BitConverter.GetBytes ]
            let analysis = { AnalysisOptions.Default with Window = Last 5; IncludeBias = true }
            let thermo = Engine.analyze run analysis
            let fromExport, _ = CheckpointAnalysis.analyze [| export |] CheckpointReadOptions.Default false analysis (fun _ _ -> ())
            let bits (groups: GroupResult[]) =
                groups |> Array.map (fun g -> g.Key, BitConverter.DoubleToInt64Bits g.Temperature.Temperature, BitConverter.DoubleToInt64Bits g.Temperature.Drift, BitConverter.DoubleToInt64Bits g.L1Norm)
                |> Array.sortBy (fun (k, _, _, _) -> k.Layer, k.Unit)
            Expect.equal (bits fromExport.Groups) (bits thermo.Groups) "unit groups"
            Expect.equal (bits fromExport.Layers) (bits thermo.Layers) "layers"
            Expect.equal fromExport.Window.Times thermo.Window.Times "window"
        }

        test "a gap in a declared spacing is an error unless accepted, and the outputs then say so" {
            use dir = new TempDirectory()
            let series = dir.File "series"
            Directory.CreateDirectory series |> ignore
            for e in [ 0; 1; 2; 4; 5 ] do
                File.Copy(Path.Combine(seriesRoot, "plain", sprintf "epoch_%d.pt" e), Path.Combine(series, sprintf "epoch_%d.pt" e))
            let run accept = CheckpointAnalysis.analyze [| series |] CheckpointReadOptions.Default accept { AnalysisOptions.Default with Window = Between(0, 5) } (fun _ _ -> ())
            expectArtifactError "lacks the checkpoints of epochs 3" (fun () -> run false)
            Expect.equal (artifactFault (fun () -> run false)).Path series "Path: the directory the checkpoints lie in"
            // Given file by file (a shell glob), in place or imported: the directory that holds them.
            let files = Directory.GetFiles series |> Array.sort
            let inPlace = artifactFault (fun () -> CheckpointAnalysis.analyze files CheckpointReadOptions.Default false { AnalysisOptions.Default with Window = Between(0, 5) } (fun _ _ -> ()))
            Expect.equal inPlace.Path (Path.GetFullPath series) "Path: the directory of the files"
            Expect.stringStarts inPlace.Message (Path.GetFullPath series + ": lacks the checkpoints of epochs 3") "the message names it"
            let imported = artifactFault (fun () -> CheckpointAnalysis.import files CheckpointReadOptions.Default false (dir.File "imported") (fun _ _ -> ()))
            Expect.equal imported.Path (Path.GetFullPath series) "Path of the import's gap"
            // One checkpoint is no series: the directory it lies in is named.
            let one = artifactFault (fun () -> CheckpointAnalysis.analyze files[..0] CheckpointReadOptions.Default false AnalysisOptions.Default (fun _ _ -> ()))
            Expect.equal one.Path (Path.GetFullPath series) "Path of a series of one"
            Expect.stringContains one.Message "needs at least two snapshots" "too few"
            let result, _ = run true
            Expect.stringContains result.Window.Rule SeriesWindow.AcceptedGapsNote "the rule says gaps were accepted"
            Expect.equal result.Window.Intervals [| 1; 1; 2; 1 |] "each velocity its own Δt"
        }

        test "bad series: one message naming the file (and tensor, time), and nothing written" {
            use dir = new TempDirectory()
            let cases =
                [ "shape_change", "has shape"
                  "layer_missing", "disappeared"
                  "nan", "holds NaN"
                  "same_step", "step_10"
                  "missing_shard", "does not exist" ]
            for case, message in cases do
                let input = Path.Combine(badRoot, case)
                let out = dir.File(case + "-out")
                expectArtifactError message (fun () ->
                    let result, contents = CheckpointAnalysis.analyze [| input |] CheckpointReadOptions.Default false { AnalysisOptions.Default with Window = Last 1 } (fun _ _ -> ())
                    CheckpointAnalysis.writeAnalysis [| input |] out result contents)
                Expect.isFalse (Directory.Exists out) (sprintf "%s: no analysis written" case)
                let run = dir.File(case + "-run")
                expectArtifactError message (fun () -> CheckpointAnalysis.import [| input |] CheckpointReadOptions.Default false run (fun _ _ -> ()))
                Expect.isFalse (Directory.Exists run) (sprintf "%s: no run written" case)
            let empty = dir.File "empty"
            Directory.CreateDirectory empty |> ignore
            expectArtifactError "holds no checkpoint" (fun () -> CheckpointAnalysis.analyze [| empty |] CheckpointReadOptions.Default false AnalysisOptions.Default (fun _ _ -> ()))
            for file, message in [ "legacy_nonzip.pt", "legacy"; "whole_model.pt", "not a state dict"; "truncated.safetensors", "truncated.safetensors" ] do
                expectArtifactError message (fun () -> CheckpointAnalysis.readContents CheckpointReadOptions.Default (Path.Combine(badRoot, file)))
        }

        test "the output never goes inside the checkpoints, nor replaces a directory it did not write" {
            use dir = new TempDirectory()
            let input = Path.Combine(seriesRoot, "plain")
            let result, contents = CheckpointAnalysis.analyze [| input |] CheckpointReadOptions.Default false (options "plain") (fun _ _ -> ())
            expectArtifactError "which holds the checkpoints" (fun () -> CheckpointAnalysis.writeAnalysis [| input |] (Path.Combine(input, "analysis")) result contents)
            // Files given one by one (a shell glob): their directory is the checkpoints' all the same.
            let files = [| for e in 0 .. 5 -> Path.Combine(input, sprintf "epoch_%d.pt" e) |]
            expectArtifactError "which holds the checkpoints" (fun () -> CheckpointAnalysis.checkAnalysisOutput files (Path.Combine(input, "analysis")))
            // Through a link to the checkpoint directory.
            let link = dir.File "link"
            Directory.CreateSymbolicLink(link, input) |> ignore
            expectArtifactError "which holds the checkpoints" (fun () -> CheckpointAnalysis.checkAnalysisOutput [| input |] (Path.Combine(link, "analysis")))
            // An output that holds an input would be replaced whole, input included.
            let holder = dir.File "holder"
            Directory.CreateDirectory(Path.Combine(holder, "ckpts")) |> ignore
            File.Copy(files[0], Path.Combine(holder, "ckpts", "epoch_0.pt"))
            File.Copy(files[1], Path.Combine(holder, "ckpts", "epoch_1.pt"))
            expectArtifactError "holds the input" (fun () -> CheckpointAnalysis.checkAnalysisOutput [| Path.Combine(holder, "ckpts") |] holder)
            let foreign = dir.File "foreign"
            Directory.CreateDirectory foreign |> ignore
            File.WriteAllText(Path.Combine(foreign, "notes.txt"), "mine")
            expectArtifactError "exists and is not" (fun () -> CheckpointAnalysis.writeAnalysis [| input |] foreign result contents)
            Expect.equal (File.ReadAllText(Path.Combine(foreign, "notes.txt"))) "mine" "untouched"
            expectArtifactError "exists and is not" (fun () -> CheckpointAnalysis.import [| input |] CheckpointReadOptions.Default false foreign (fun _ _ -> ()))
        }

        test "a sharded index cannot name itself, another index, or a file outside its directory; a pipe is refused unopened" {
            use dir = new TempDirectory()
            let shard = dir.File "model-00001-of-00001.safetensors"
            writeSafetensors shard [ "a.weight", "F32", [| 2 |], Array.collect (fun (v: float32) -> BitConverter.GetBytes v) [| 1.0f; 2.0f |] ]
            let index (name: string) (target: string) =
                let path = dir.File name
                File.WriteAllText(path, sprintf """{"weight_map": {"a.weight": "%s"}}""" target)
                path
            expectArtifactError "another index" (fun () -> CheckpointAnalysis.readContents CheckpointReadOptions.Default (index "model.safetensors.index.json" "model.safetensors.index.json"))
            expectArtifactError "not a file name beside the index" (fun () -> CheckpointAnalysis.readContents CheckpointReadOptions.Default (index "up.safetensors.index.json" "../model-00001-of-00001.safetensors"))
            expectArtifactError "not a file name beside the index" (fun () -> CheckpointAnalysis.readContents CheckpointReadOptions.Default (index "abs.safetensors.index.json" "/etc/hostname"))
            let fine = CheckpointAnalysis.readContents CheckpointReadOptions.Default (index "ok.safetensors.index.json" "model-00001-of-00001.safetensors")
            Expect.equal (fine.Tensors |> Array.map (fun t -> t.Key)) [| "a.weight" |] "a shard beside its index reads"
            let fifo = dir.File "step_3.pt"
            use mkfifo = Diagnostics.Process.Start("mkfifo", fifo)
            Expect.isTrue (mkfifo.WaitForExit(10_000) && mkfifo.ExitCode = 0 && File.Exists fifo) "mkfifo made the pipe"
            expectArtifactError "not a regular file" (fun () -> CheckpointAnalysis.readContents CheckpointReadOptions.Default fifo)
        }

        test "a prune mask names the hottest units' tensors and dimensions, from the analysis" {
            use dir = new TempDirectory()
            let input = Path.Combine(seriesRoot, "huggingface")
            let result, contents = CheckpointAnalysis.analyze [| input |] CheckpointReadOptions.Default false (options "huggingface") (fun _ _ -> ())
            let out = dir.File "analysis"
            CheckpointAnalysis.writeAnalysis [| input |] out result contents
            let table = Path.Combine(out, RunLayout.TemperatureFile)
            let selected = PruneMask.select table "hot" 2 (Some [| "conv1" |])
            let hottest = result.Groups |> Array.filter (fun g -> g.Key.Layer = "conv1") |> Array.sortBy (fun g -> -g.Temperature.Temperature) |> Array.take 2 |> Array.map (fun g -> g.Key.Unit)
            Expect.equal selected [| "conv1", hottest |] "the two hottest units, hottest first"
            let entries = PruneMask.entries table selected true
            Expect.equal (entries |> Array.map (fun e -> e.Tensor, e.Dim)) [| "conv1.weight", 0; "conv1.bias", 0 |] "tensors and dims from tensors.json"
            let unlisted = artifactFault (fun () -> PruneMask.entries table [| "fc9", [| 0 |] |] false)
            Expect.equal unlisted.Path (RunLayout.tensors (Path.GetFullPath out)) "Path: the tensors.json that lists no such weight"
            Expect.stringContains unlisted.Message "lists no weight of layer fc9" "the message names the layer"
            use json = JsonDocument.Parse(PruneMask.toJson "hot" entries)
            Expect.equal (json.RootElement.GetProperty("format").GetString()) PruneMask.Format "format"
            Expect.throwsT<SettingException> (fun () -> PruneMask.select table "hot" 4 None |> ignore) "count must leave a unit"
        }
    ]

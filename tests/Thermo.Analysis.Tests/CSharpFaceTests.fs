/// The C# face (CSharp.fs) used the way C# uses it: static members, arrays, Func/Action, nullable.
module Thermo.Analysis.Tests.CSharpFaceTests

open System
open System.IO
open Expecto
open Thermo.Analysis
open Thermo.Analysis.Format
open Thermo.Analysis.Run
open Thermo.Analysis.Physics
open Thermo.Analysis.Engine
open Thermo.Analysis.Tests.Generators

let private writeRun (dir: string) (epochs: int) =
    let rng = Random(4)
    for e in 0..epochs do
        let t l n shape = { Layer = l; Tensor = "weight"; Shape = shape; Values = Array.init n (fun _ -> float32 (rng.NextDouble())) }
        SnapshotWriter.write SnapshotFileFormat.Parquet (Path.Combine(RunLayout.snapshots dir, SnapshotSchema.fileName SnapshotFileFormat.Parquet e))
            { Epoch = e; Step = int64 e; Tensors = [| t "a" 6 [| 2; 3 |]; t "b" 4 [| 4; 1 |] |] }
    declareRun dir epochs

[<Tests>]
let tests =
    testList "C# face" [
        testCase "Table writes from a params array of Column's factories and reads columns by name" <| fun () ->
            use dir = new TempDirectory()
            let path = dir.File "t.parquet"
            Table.Write(path, "demo", Column.Strings("layer", [| "a"; "b" |]), Column.Ints("unit", [| 0; 1 |]),
                        Column.Longs("step", [| 5L; 6L |]), Column.Floats("f", [| 1.5f; 2.5f |]), Column.Doubles("t", [| 0.5; 0.25 |]))
            // the same bytes as the F# list form
            Tables.write (dir.File "f.parquet") "demo"
                [ StringColumn("layer", [| "a"; "b" |]); Int32Column("unit", [| 0; 1 |]); Int64Column("step", [| 5L; 6L |]); Float32Column("f", [| 1.5f; 2.5f |]); Float64Column("t", [| 0.5; 0.25 |]) ]
            Expect.sequenceEqual (File.ReadAllBytes path) (File.ReadAllBytes(dir.File "f.parquet")) "same file"
            let columns = Table.Read(path, "demo")
            Expect.sequenceEqual (Table.GetStrings(columns, "layer", path)) [| "a"; "b" |] "strings"
            Expect.sequenceEqual (Table.GetInts(columns, "unit", path)) [| 0; 1 |] "ints"
            Expect.sequenceEqual (Table.GetLongs(columns, "step", path)) [| 5L; 6L |] "longs"
            Expect.sequenceEqual (Table.GetFloats(columns, "f", path)) [| 1.5f; 2.5f |] "floats"
            Expect.sequenceEqual (Table.GetDoubles(columns, "t", path)) [| 0.5; 0.25 |] "doubles"
            expectArtifactError "t.parquet: no column 'x'" (fun () -> Table.GetDoubles(columns, "x", path))
            expectArtifactError "t.parquet: column 'layer' is not of type Double" (fun () -> Table.GetDoubles(columns, "layer", path))
            expectArtifactError "a demo table, expected a metrics table" (fun () -> Table.Read(path, "metrics"))

        testCase "Analyzer.Run reports progress through an Action, and accepts none" <| fun () ->
            use dir = new TempDirectory()
            writeRun dir.Path 5
            let options = AnalysisOptions.Default.WithWindow(Analyzer.ParseWindow "last:4")
            let calls = Collections.Generic.List<int * int>()
            let result = Analyzer.Run(dir.Path, options, Action<int, int>(fun d t -> calls.Add((d, t))))
            Expect.sequenceEqual calls [ for f in 0..5 -> f, 6 ] "each of the 5 window files and the drift pass, of 6"
            let silent = Analyzer.Run(dir.Path, options, null)
            Expect.equal silent.Groups (Engine.analyze dir.Path options).Groups "same result without progress"
            Expect.equal result.Groups silent.Groups "same result with progress"
            Analyzer.Write result
            Expect.equal (AnalysisTables.unitTemperatures dir.Path "a").Units [| 0; 1 |] "written where the tables are read"

        testCase "Analyzer.Options builds from plain and nullable values" <| fun () ->
            let physics = { Physics.Default with Convention = TemperatureConvention.MeanSquare }
            let options = Analyzer.Options(Between(2, 8), Grouping.Layer, [| "a" |], true, physics, [||], Nullable<struct (int * int)>(struct (2, 5)))
            Expect.equal options
                { Window = Between(2, 8); Grouping = Grouping.Layer; Layers = Some [| "a" |]; IncludeBias = true; Physics = physics; MsdLayers = Some [||]; FitLags = Some(2, 5); Spacing = SnapshotSpacing.FromManifest }
                "every field"
            Expect.equal (Analyzer.Options(Auto, Grouping.Unit, null, false, Physics.Default, null, Nullable<struct (int * int)>())) AnalysisOptions.Default "nulls are the defaults"

        testCase "settings parse, or raise SettingException with the setting and a flag-free detail" <| fun () ->
            Expect.equal (Analyzer.ParseWindow "last:7") (Last 7) "last"
            Expect.equal (WindowSpec.Parse " 3:9 ") (Between(3, 9)) "a:b"
            expectSettingError AnalysisSetting.Window "soon: expected auto, last:N or a:b" (fun () -> Analyzer.ParseWindow "soon")
            expectSettingError AnalysisSetting.Window "last:0: N in last:N must be a positive integer" (fun () -> Analyzer.ParseWindow "last:0")
            expectSettingError AnalysisSetting.Window "9:3: a:b needs integers 0 ≤ a < b" (fun () -> Analyzer.ParseWindow "9:3")
            Expect.equal (Analyzer.ParseGrouping "filter") Grouping.Unit "filter"
            Expect.equal (Analyzer.ParseGrouping "row") Grouping.Unit "row"
            Expect.equal (Analyzer.ParseGrouping "weight") Grouping.Weight "weight"
            expectSettingError AnalysisSetting.Groups "unknown grouping 'neurons' (known: layer, filter, unit, row, weight)" (fun () -> Analyzer.ParseGrouping "neurons")
            Expect.equal (Analyzer.ParseFitLags "2:9") (struct (2, 9)) "lags"
            for bad in [ "0:4"; "4:4"; "x"; "1:2:3" ] do
                expectSettingError AnalysisSetting.FitLags (sprintf "'%s' is not a:b with 1 ≤ a < b" bad) (fun () -> Analyzer.ParseFitLags bad)
            let e = SettingException(AnalysisSetting.Window, "runs/r1", "last:12 is longer than the run (snapshots 0..10)")
            Expect.equal e.Message "runs/r1: last:12 is longer than the run (snapshots 0..10)" "Message puts the run first"
            Expect.equal (SettingException(AnalysisSetting.Window, "", "x").Message) "x" "no run, no prefix"

        testCase "AtomicFiles write files and replace directories through delegates" <| fun () ->
            use dir = new TempDirectory()
            AtomicFiles.Write(dir.File "a.bin", Action<string>(fun temp -> File.WriteAllBytes(temp, [| 1uy; 2uy |])))
            Expect.sequenceEqual (File.ReadAllBytes(dir.File "a.bin")) [| 1uy; 2uy |] "written"
            AtomicFiles.WriteAllText(dir.File "b.txt", "é")
            Expect.sequenceEqual (File.ReadAllBytes(dir.File "b.txt")) [| 0xC3uy; 0xA9uy |] "UTF-8 without BOM"
            let page = AtomicFiles.ReplaceDirectory(dir.File "report", Func<string, string>(fun temp -> File.WriteAllText(Path.Combine(temp, "index.html"), "<p>"); "index.html"))
            Expect.equal page "index.html" "Func's result"
            AtomicFiles.ReplaceDirectory(dir.File "report", Action<string>(fun temp -> File.WriteAllText(Path.Combine(temp, "other.html"), "")))
            Expect.sequenceEqual (Directory.GetFiles(dir.File "report") |> Array.map Path.GetFileName) [| "other.html" |] "replaced whole"

        testCase "Snapshots.StreamValues streams through Action and Func" <| fun () ->
            use dir = new TempDirectory()
            writeRun dir.Path 1
            let path = Path.Combine(RunLayout.snapshots dir.Path, SnapshotSchema.fileName SnapshotFileFormat.Parquet 1)
            let mutable header = None
            let values = Collections.Generic.List<float32>()
            let chunk = Array.zeroCreate<float32> 3
            Snapshots.StreamValues(path,
                Action<int, int64, TensorEntry[]>(fun e s d -> header <- Some(e, s, d |> Array.map (fun t -> t.Layer, t.Tensor, t.Shape))),
                Func<float32[]>(fun () -> chunk),
                Action<float32[], int>(fun c n -> values.AddRange(c[.. n - 1])))
            Expect.equal header (Some(1, 1L, [| "a", "weight", [| 2; 3 |]; "b", "weight", [| 4; 1 |] |])) "header first"
            let snapshot = SnapshotReader.readFile path
            Expect.sequenceEqual values (snapshot.Tensors |> Array.collect (fun t -> t.Values)) "every value in order"

        testCase "Kinematics is callable with plain arrays" <| fun () ->
            Expect.equal (Kinematics.l1Norm [| 1.0f; -2.5f |]) 3.5 "L1"
            Expect.equal (Kinematics.temperature Physics.Default 4.0 2.0) 1.0 "½·4/2"
            Expect.sequenceEqual (Kinematics.unitL1Norms 2 [| 1.0f; -2.0f; 0.5f; 0.25f |]) [| 3.0; 0.75 |] "per-unit L1"

        testCase "LayerCheck: one setting and one wording for an unknown or unanalysed layer" <| fun () ->
            let check (f: unit -> unit) =
                try f (); None
                with :? SettingException as e -> Some(e.Setting, e.Run, e.Detail)
            Expect.isNone (check (fun () -> LayerCheck.Exists("r", "a", [| "a"; "b" |]))) "a known layer passes"
            Expect.equal (check (fun () -> LayerCheck.Exists("r", "c", [| "a"; "b" |])))
                (Some("Layer", "r", "has no layer 'c' (layers: a, b)")) "unknown layer"
            Expect.isNone (check (fun () -> LayerCheck.Analysed("r", "a", ResizeArray [ "a" ]))) "an analysed layer passes"
            Expect.equal (check (fun () -> LayerCheck.Analysed("r", "fc", [||])))
                (Some("Layer", "r", "layer 'fc' has no per-filter temperatures (per-filter layers analysed: none)")) "unanalysed layer"
    ]

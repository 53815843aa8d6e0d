module Thermo.Analysis.Tests.SnapshotFormatTests

open System
open System.IO
open Expecto
open Thermo.Analysis.Format
open Thermo.Analysis.Run
open Thermo.Analysis.Tests.Generators

let private sameSnapshot (expected: Snapshot) (actual: Snapshot) =
    Expect.equal actual.Epoch expected.Epoch "epoch"
    Expect.equal actual.Step expected.Step "step"
    Expect.equal actual.Tensors.Length expected.Tensors.Length "tensor count"
    for e, a in Array.zip expected.Tensors actual.Tensors do
        Expect.equal (a.Layer, a.Tensor) (e.Layer, e.Tensor) "names"
        Expect.sequenceEqual a.Shape e.Shape "shape"
        Expect.sequenceEqual a.Values e.Values (sprintf "values of %s.%s" e.Layer e.Tensor)

let private roundTrip format (snapshot: Snapshot) =
    use dir = new TempDirectory()
    let path = dir.File(SnapshotSchema.fileName format snapshot.Epoch)
    SnapshotWriter.write format path snapshot
    let back = SnapshotReader.readFile path
    sameSnapshot snapshot back
    Expect.sequenceEqual (Directory.GetFiles dir.Path |> Array.map Path.GetFileName) [| Path.GetFileName path |] "only the final file remains"

let private sample epoch =
    { Epoch = epoch
      Step = int64 epoch * 10L
      Tensors =
        [| { Layer = "conv1"; Tensor = "weight"; Shape = [| 2; 1; 2; 2 |]; Values = Array.init 8 (fun i -> float32 i + float32 epoch) }
           { Layer = "conv1"; Tensor = "bias"; Shape = [| 2 |]; Values = [| 0.5f; -0.5f |] }
           { Layer = "fc"; Tensor = "weight"; Shape = [| 3; 2 |]; Values = Array.init 6 (fun i -> -float32 i) } |] }

[<Tests>]
let tests =
    testList "snapshot format" [
        testPropertyWithConfig config "Parquet snapshots read back exactly" (roundTrip SnapshotFileFormat.Parquet)
        testPropertyWithConfig config "Arrow IPC snapshots read back exactly" (roundTrip SnapshotFileFormat.Arrow)

        testCase "a snapshot larger than one row group reads back exactly" <| fun () ->
            let n = SnapshotWriter.RowsPerBatch + 12345
            let big = { Epoch = 3; Step = 9L; Tensors = [| { Layer = "big"; Tensor = "weight"; Shape = [| 5; n / 5 |]; Values = Array.init (n / 5 * 5) (fun i -> float32 (i % 977)) } |] }
            roundTrip SnapshotFileFormat.Parquet big
            roundTrip SnapshotFileFormat.Arrow big

        testCase "the tensor directory encodes and decodes" <| fun () ->
            let s = sample 1
            let decoded = SnapshotSchema.decodeDirectory (SnapshotSchema.encodeDirectory s.Tensors)
            Expect.equal decoded (Some(s.Tensors |> Array.map (fun t -> t.Layer, t.Tensor, t.Shape))) "round trip"
            Expect.isNone (SnapshotSchema.decodeDirectory "conv1\tweight\t2,x") "a bad dimension is rejected"

        testCase "a shape that disagrees with the values is refused before writing" <| fun () ->
            use dir = new TempDirectory()
            let bad = { sample 0 with Tensors = [| { Layer = "a"; Tensor = "weight"; Shape = [| 3 |]; Values = [| 1.0f |] } |] }
            Expect.throwsT<ArgumentException> (fun () -> SnapshotWriter.write SnapshotFileFormat.Parquet (dir.File "x.parquet") bad) "refused"
            Expect.isEmpty (Directory.GetFiles dir.Path) "nothing written"

        testCase "a missing file is named" <| fun () ->
            expectArtifactError "does not exist" (fun () -> SnapshotReader.readFile "/nonexistent/epoch=00001.parquet")

        testList "truncated files are reported, not misread" [
            for format in [ SnapshotFileFormat.Parquet; SnapshotFileFormat.Arrow ] do
                testCase (string format) <| fun () ->
                    use dir = new TempDirectory()
                    let path = dir.File(SnapshotSchema.fileName format 1)
                    SnapshotWriter.write format path (sample 1)
                    let bytes = File.ReadAllBytes path
                    File.WriteAllBytes(path, bytes[.. bytes.Length / 2])
                    expectArtifactError path (fun () -> SnapshotReader.readFile path)
        ]

        testCase "a Parquet file that is not a snapshot is refused" <| fun () ->
            use dir = new TempDirectory()
            let path = dir.File "epoch=00001.parquet"
            Tables.write path "metrics" [ Int32Column("epoch", [| 1 |]) ]
            expectArtifactError "thermo.tensors" (fun () -> SnapshotReader.readFile path)

        testCase "a snapshot of another schema version is refused" <| fun () ->
            use dir = new TempDirectory()
            let path = dir.File "epoch=00001.parquet"
            let schema = Apache.Arrow.Schema.Builder().Field(fun f -> f.Name("value").DataType(Apache.Arrow.Types.FloatType.Default) |> ignore).Metadata(SnapshotSchema.VersionKey, "99").Build()
            // StoreSchema: Arrow's Parquet writer copies schema metadata into the file's key-value metadata only then.
            (use properties = (new ParquetSharp.WriterPropertiesBuilder()).Build()
             use arrowProperties = (new ParquetSharp.Arrow.ArrowWriterPropertiesBuilder()).StoreSchema().Build()
             use writer = new ParquetSharp.Arrow.FileWriter(path, schema, properties, arrowProperties)
             let values = new Apache.Arrow.FloatArray.Builder()
             writer.WriteRecordBatch(new Apache.Arrow.RecordBatch(schema, [ values.Append(1.0f).Build() :> Apache.Arrow.IArrowArray ], 1))
             writer.Close())
            expectArtifactError "version 99" (fun () -> SnapshotReader.readFile path)

        testCase "a run streams its epochs in order and ignores temporary files" <| fun () ->
            use dir = new TempDirectory()
            let snapshots = Path.Combine(dir.Path, "snapshots")
            for e in [ 2; 0; 1 ] do SnapshotWriter.write SnapshotFileFormat.Parquet (Path.Combine(snapshots, SnapshotSchema.fileName SnapshotFileFormat.Parquet e)) (sample e)
            File.WriteAllText(Path.Combine(snapshots, ".epoch=00003.parquet.1.abc.tmp"), "partial")
            let epochs = SnapshotSeries.readRun dir.Path |> Seq.map (fun s -> s.Epoch) |> Seq.toList
            Expect.equal epochs [ 0; 1; 2 ] "epoch order"
            sameSnapshot (sample 2) (SnapshotSeries.readRun dir.Path |> Seq.last)

        testCase "a failed write leaves neither the file nor a temporary" <| fun () ->
            use dir = new TempDirectory()
            let path = dir.File "out.txt"
            Expect.throwsT<InvalidOperationException> (fun () -> AtomicFile.write path (fun temp -> File.WriteAllText(temp, "half"); invalidOp "boom")) "propagates"
            Expect.isEmpty (Directory.GetFiles dir.Path) "no file left"
    ]

module Thermo.Analysis.Tests.TablesTests

open Expecto
open Thermo.Analysis.Format
open Thermo.Analysis.Tests.Generators

[<Tests>]
let tests =
    testList "tables" [
        testCase "every column type reads back exactly" <| fun () ->
            use dir = new TempDirectory()
            let path = dir.File "t.parquet"
            let columns =
                [ Int32Column("epoch", [| 0; 1; 2 |])
                  Int64Column("step", [| 0L; 10L; 1L <<< 40 |])
                  Float32Column("f", [| 1.5f; nanf; -0.0f |])
                  Float64Column("d", [| nan; 1e-300; 2.0 |])
                  StringColumn("layer", [| "conv1"; "fc"; "conv1" |]) ]
            Tables.write path "demo" columns
            let back = Tables.read path "demo"
            Expect.equal (back |> List.map (fun c -> c.Name)) (columns |> List.map (fun c -> c.Name)) "names in order"
            for expected, actual in List.zip columns back do
                match expected, actual with
                | Float32Column(_, e), Float32Column(_, a) -> Expect.sequenceEqual (a |> Array.map System.BitConverter.SingleToInt32Bits) (e |> Array.map System.BitConverter.SingleToInt32Bits) "bits"
                | Float64Column(_, e), Float64Column(_, a) -> Expect.sequenceEqual (a |> Array.map System.BitConverter.DoubleToInt64Bits) (e |> Array.map System.BitConverter.DoubleToInt64Bits) "bits"
                | e, a -> Expect.equal a e "column"

        testCase "a table of several row groups reads back in order, strings included" <| fun () ->
            use dir = new TempDirectory()
            let path = dir.File "long.parquet"
            let rows = 150_001 // three batches of 65,536 rows and a remainder
            let words = [| "conv1"; "fc"; "kinetic 1/2 m v^2 / k_B (m=1, k_B=1)" |]
            let columns =
                [ StringColumn("layer", Array.init rows (fun i -> words[(i / 7) % 3]))
                  Int32Column("unit", Array.init rows id)
                  Float64Column("t", Array.init rows (fun i -> float i * 0.5)) ]
            Tables.write path "long" columns
            Expect.equal (Tables.read path "long") columns "every row, in order"

        testCase "a table written batch by batch reads back as their concatenation; mismatched batches are refused" <| fun () ->
            use dir = new TempDirectory()
            let batch (from: int) (count: int) = [ Int32Column("i", Array.init count (fun k -> from + k)); StringColumn("s", Array.init count (fun k -> string ((from + k) % 3))) ]
            Tables.writeBatches (dir.File "b.parquet") "b" (seq { batch 0 5; batch 5 0; batch 5 65536; batch 65541 2 })
            Expect.equal (Tables.read (dir.File "b.parquet") "b") [ Int32Column("i", Array.init 65543 id); StringColumn("s", Array.init 65543 (fun k -> string (k % 3))) ] "in order"
            Expect.throwsT<System.ArgumentException> (fun () -> Tables.writeBatches (dir.File "c.parquet") "c" (seq { batch 0 2; [ Int32Column("j", [| 1 |]); StringColumn("s", [| "x" |]) ] })) "other columns"
            Expect.isFalse (System.IO.File.Exists(dir.File "c.parquet")) "nothing written"

        testCase "an empty table reads back with its column types" <| fun () ->
            use dir = new TempDirectory()
            let path = dir.File "empty.parquet"
            Tables.write path "demo" [ StringColumn("layer", [||]); Float64Column("t", [||]) ]
            Expect.equal (Tables.read path "demo") [ StringColumn("layer", [||]); Float64Column("t", [||]) ] "types kept"

        testCase "a table of another kind is refused" <| fun () ->
            use dir = new TempDirectory()
            let path = dir.File "t.parquet"
            Tables.write path "metrics" [ Int32Column("epoch", [| 0 |]) ]
            Expect.throwsC (fun () -> Tables.read path "gradnoise" |> ignore) (fun e -> Expect.stringContains e.Message "a metrics table, expected a gradnoise table" "named")

        testCase "columns of different lengths are refused" <| fun () ->
            use dir = new TempDirectory()
            Expect.throwsT<System.ArgumentException> (fun () -> Tables.write (dir.File "t.parquet") "x" [ Int32Column("a", [| 1 |]); Int32Column("b", [||]) ]) "refused"
    ]

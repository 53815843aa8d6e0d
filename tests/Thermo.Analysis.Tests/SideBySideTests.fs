module Thermo.Analysis.Tests.SideBySideTests

open System
open Expecto
open FsCheck
open FsCheck.FSharp
open Microsoft.FSharp.Reflection
open Thermo.Analysis
open Thermo.Analysis.Format
open Thermo.Analysis.Physics
open Thermo.Analysis.Engine
open Thermo.Analysis.Tests.Generators

/// Every number of a result as its bits, every other leaf as text, in field order: two results
/// give the same list exactly when they agree to the last bit (NaN included).
let rec private leaves (value: obj) : string list =
    match value with
    | null -> [ "null" ]
    | :? float as x -> [ string (BitConverter.DoubleToInt64Bits x) ]
    | :? float32 as x -> [ string (BitConverter.SingleToInt32Bits x) ]
    | :? string as s -> [ s ]
    | :? Array as a -> [ for item in a do yield! leaves item ]
    | :? GroupSeries as s -> string s.Intervals :: leaves s.Keys @ leaves s.Values
    | _ ->
        let t = value.GetType()
        if FSharpType.IsRecord(t, true) then FSharpValue.GetRecordFields(value, true) |> Array.toList |> List.collect leaves
        elif FSharpType.IsTuple t then FSharpValue.GetTupleFields value |> Array.toList |> List.collect leaves
        elif FSharpType.IsUnion(t, true) then
            let case, fields = FSharpValue.GetUnionFields(value, t, true)
            case.Name :: (fields |> Array.toList |> List.collect leaves)
        else [ string value ]

let private layout (units: int) (width: int) (wide: int) : SnapshotReader.TensorDirectory =
    [| "a", "weight", [| units; width |]; "a", "bias", [| units |]; "b", "weight", [| 3; wide |] |]

/// Snapshots of a random walk with drift; `size` values each.
let private walk (seed: int) (count: int) (size: int) =
    let rng = Random(seed)
    let current = Array.init size (fun _ -> float32 (rng.NextDouble() - 0.5))
    let drift = Array.init size (fun _ -> float32 ((rng.NextDouble() - 0.5) * 0.01))
    [| for _ in 1 .. count do
           for k in 0 .. size - 1 do current[k] <- current[k] + drift[k] + float32 ((rng.NextDouble() - 0.5) * 0.02)
           yield Array.copy current |]

let private caseGen =
    gen {
        let! count = Gen.choose (2, 7)
        let! uneven = Gen.elements [ false; true ]
        let! gaps = Gen.arrayOfLength (count - 1) (if uneven then Gen.choose (1, 9) else Gen.constant 1)
        // Up to ~40,000 values: a unit, a tensor and the snapshot all cross 16,384-value chunks.
        let! units = Gen.choose (1, 60)
        let! width = Gen.choose (1, 500)
        let! wide = Gen.choose (1, 4000)
        let! grouping = Gen.elements [ Grouping.Layer; Grouping.Unit; Grouping.Weight ]
        let! bias = Gen.elements [ false; true ]
        let! msd = Gen.elements [ [| "a" |]; [| "b" |]; [||] ]
        let! streamChunk = Gen.elements [ 7; 1000; 1 <<< 14 ]
        let! seed = Gen.choose (0, Int32.MaxValue)
        return Array.scan (+) 0 gaps, units, width, wide, grouping, bias, msd, streamChunk, seed
    }

type private Cases =
    static member Case() = Arb.fromGen caseGen

let private config = { FsCheckConfig.defaultConfig with arbitrary = [ typeof<Cases> ]; maxTest = 40 }

[<Tests>]
let tests =
    testList "snapshots read side by side" [
        testPropertyWithConfig config "give the streamed analysis to the last bit, whatever the grouping, spacing, MSD and chunking" <|
            fun ((times: int[]), units, width, wide, grouping, bias, (msd: string[]), streamChunk, seed) ->
                let directory = layout units width wide
                let size = units * width + units + 3 * wide
                // Per-weight groups make a record per weight: keep those cases small.
                let directory, size =
                    if grouping = Grouping.Weight then layout (min units 4) (min width 20) (min wide 30), min units 4 * min width 20 + min units 4 + 3 * min wide 30
                    else directory, size
                let values = walk seed times.Length size
                let window = Window.resolveUneven "memory" times None (Between(times[0], times[times.Length - 1]))
                let options = { AnalysisOptions.Default with Grouping = grouping; IncludeBias = bias; MsdLayers = Some msd }
                // Streamed in odd-sized pieces: the engine's own 64 KB chunks set the partial sums, not the source's.
                let streamed = Engine.analyzeSeries (inMemorySeries directory times values false streamChunk) window options (fun _ _ -> ())
                let sideBySide = Engine.analyzeSeries (inMemorySeries directory times values true streamChunk) window options (fun _ _ -> ())
                Expect.sequenceEqual (leaves sideBySide) (leaves streamed) "side by side and streamed agree"

        test "a window whose checkpoints would hold too many files open at once is streamed, with the same results" {
            let directory = layout 7 300 50
            let times = [| 0; 1; 2; 3 |]
            let values = walk 5 times.Length (7 * 300 + 7 + 150)
            let window = Window.resolveUneven "memory" times None (Between(0, 3))
            let analyse files =
                let reads = ref 0
                let result = Engine.analyzeSeries (inMemorySeriesHolding files reads directory times values true 1000) window AnalysisOptions.Default (fun _ _ -> ())
                leaves result, reads.Value
            let streamed = leaves (Engine.analyzeSeries (inMemorySeries directory times values false 1000) window AnalysisOptions.Default (fun _ _ -> ()))
            // Four checkpoints of 60 shards fit the pass's 256 open files; of 100 shards they do not.
            let fits, fitsReads = analyse 60
            let over, overReads = analyse 100
            Expect.isGreaterThan fitsReads 0 "240 open files: read side by side"
            Expect.equal overReads 0 "400 open files: not read side by side"
            Expect.sequenceEqual fits streamed "side by side gives the streamed results"
            Expect.sequenceEqual over streamed "the fallback is the streamed analysis"
        }

        test "by default the MSD is that of the first layer whose trajectories fit in 16M values, not a language model's embedding" {
            // 'big' is first: 257×512 weights × 128 snapshots = 16,842,752 values, just over; 'small' fits.
            let directory : SnapshotReader.TensorDirectory = [| "big", "weight", [| 257; 512 |]; "small", "weight", [| 4; 8 |] |]
            let times = [| 0 .. 127 |]
            let rng = Random(7)
            let values = Array.init times.Length (fun _ -> Array.init (257 * 512 + 32) (fun _ -> float32 (rng.NextDouble())))
            let window = Window.resolveUneven "memory" times None (Between(0, 127))
            let result = Engine.analyzeSeries (inMemorySeries directory times values true (1 <<< 14)) window AnalysisOptions.Default (fun _ _ -> ())
            Expect.sequenceEqual (result.Diffusion |> Array.map (fun d -> d.Key.Layer) |> Array.distinct) [| "small" |] "MSD of the small layer only"
            Expect.equal result.Diffusion.Length 4 "one MSD group per unit of 'small'"
            let named = Engine.analyzeSeries (inMemorySeries directory times values true (1 <<< 14)) window { AnalysisOptions.Default with MsdLayers = Some [||] } (fun _ _ -> ())
            Expect.isEmpty named.Diffusion "none when asked for none"
        }

        test "several blocks of positions and several checkpoints give the streamed results to the last bit" {
            // Over several 65,536-value blocks and a clipped last one (three and a clipped fourth for unit
            // and layer groups, one and a clipped second per weight): the sums merge across blocks, and
            // on two cores each worker's buffers serve more than one block.
            let times = [| 0; 2; 3; 7; 8 |]
            let window = Window.resolveUneven "memory" times None (Between(0, 8))
            for grouping, units, width, wide in [ Grouping.Unit, 300, 700, 100; Grouping.Layer, 300, 700, 100; Grouping.Weight, 100, 700, 10 ] do
                let directory = layout units width wide
                let values = walk 11 times.Length (units * width + units + 3 * wide)
                let options = { AnalysisOptions.Default with Grouping = grouping; IncludeBias = true; MsdLayers = Some [| "b" |] }
                let streamed = Engine.analyzeSeries (inMemorySeries directory times values false 1000) window options (fun _ _ -> ())
                let sideBySide = Engine.analyzeSeries (inMemorySeries directory times values true 1000) window options (fun _ _ -> ())
                Expect.sequenceEqual (leaves sideBySide) (leaves streamed) (sprintf "grouped by %A" grouping)
        }

        test "a NaN or ±∞ is named with its snapshot, layer and tensor, side by side as streamed" {
            let directory = layout 40 500 100
            let biasAt, bAt = 40 * 500, 40 * 500 + 40
            // In an analysed unit, in the bias (read, not analysed by default), in the first and the last
            // snapshot; and two at once, the earlier snapshot's in a later chunk (positions 16,384 on),
            // where the streaming pass, snapshot after snapshot, meets the earlier snapshot's first.
            for faults, snapshot, tensor, index in
                [ [ 2, bAt + 17, nanf ], 2, "b.weight", 17
                  [ 0, biasAt + 5, infinityf ], 0, "a.bias", 5
                  [ 3, 0, -infinityf ], 3, "a.weight", 0
                  [ 1, bAt + 299, nanf ], 1, "b.weight", 299
                  [ 2, 100, nanf; 1, 18_000, infinityf ], 1, "a.weight", 18_000 ] do
                for grouping in [ Grouping.Unit; Grouping.Weight ] do
                    let values = walk 3 4 (bAt + 300)
                    for s, flat, value in faults do values[s].[flat] <- value
                    let window = Window.resolveUneven "memory" [| 0; 1; 2; 3 |] None (Between(0, 3))
                    let options = { AnalysisOptions.Default with Grouping = grouping }
                    let messageOf sideBySide =
                        try
                            Engine.analyzeSeries (inMemorySeries directory [| 0; 1; 2; 3 |] values sideBySide 1000) window options (fun _ _ -> ()) |> ignore
                            failtestf "%A in %s was analysed" faults tensor
                        with :? ArtifactException as e -> e.Message
                    let sideBySide = messageOf true
                    Expect.equal sideBySide (messageOf false) "the same message both ways"
                    Expect.stringContains sideBySide (sprintf "t=%d" snapshot) "names the snapshot"
                    Expect.stringContains sideBySide tensor "names the tensor"
                    Expect.stringContains sideBySide (sprintf "flat index %d " index) "names the position in the tensor"
        }
    ]

module Thermo.Analysis.Tests.Generators

open System
open System.IO
open System.Text
open Expecto
open FsCheck
open FsCheck.FSharp
open Thermo.Analysis
open Thermo.Analysis.Format
open Thermo.Analysis.Run
open Thermo.Analysis.Physics
open Thermo.Analysis.Engine

/// A fresh directory under the system temp folder, removed on dispose.
type TempDirectory() =
    let path = Directory.CreateTempSubdirectory("thermo-tests-").FullName
    member _.Path = path
    member _.File(name: string) = System.IO.Path.Combine(path, name)
    interface IDisposable with
        member _.Dispose() = try Directory.Delete(path, true) with _ -> ()

/// The repository's root: the folder above the test assembly that holds Thermo.sln.
let repositoryRoot =
    let mutable dir = DirectoryInfo(AppContext.BaseDirectory)
    while not (isNull dir) && not (File.Exists(Path.Combine(dir.FullName, "Thermo.sln"))) do
        dir <- dir.Parent
    if isNull dir then failwith "no Thermo.sln above the test assembly"
    dir.FullName

/// A safetensors file as the format's writer lays it out: u64 header length, the JSON header padded
/// with spaces to 8 bytes, then the data buffer.
let writeRawSafetensors (path: string) (header: string) (data: byte[]) =
    let mutable json = Encoding.UTF8.GetBytes header
    if json.Length % 8 <> 0 then json <- Array.append json (Array.create (8 - json.Length % 8) (byte ' '))
    use stream = File.Create path
    stream.Write(BitConverter.GetBytes(uint64 json.Length), 0, 8)
    stream.Write(json, 0, json.Length)
    stream.Write(data, 0, data.Length)

/// Writes tensors (key, dtype, shape, little-endian bytes) back to back, in the given order.
let writeSafetensors (path: string) (tensors: (string * string * int[] * byte[]) list) =
    let mutable offset = 0
    let entries =
        [ for key, dtype, shape, bytes in tensors do
              let entry = sprintf "\"%s\":{\"dtype\":\"%s\",\"shape\":[%s],\"data_offsets\":[%d,%d]}" key dtype (String.Join(",", shape)) offset (offset + bytes.Length)
              offset <- offset + bytes.Length
              yield entry ]
    let header = "{\"__metadata__\":{\"format\":\"pt\"}," + String.Join(",", entries) + "}"
    writeRawSafetensors path header (tensors |> List.map (fun (_, _, _, b) -> b) |> Array.concat)

/// Writes the run.json a complete Thermo training of `epochs` epochs would have written, declaring a
/// snapshot every `every` epochs and, in the last `stepEpochs` epochs, one after each of its
/// `stepsPerEpoch` optimiser steps: what `SnapshotSeries` checks a synthetic series against.
let declareRunWith (dir: string) (epochs: int) (every: int) (stepEpochs: int) (stepsPerEpoch: int) =
    Directory.CreateDirectory dir |> ignore
    File.WriteAllText(
        Path.Combine(dir, RunLayout.ManifestFile),
        sprintf """{ "config": { "epochs": %d, "snapshotEvery": %d, "stepSnapshotEpochs": %d }, "status": "Complete", "lastCompleteEpoch": %d, "lastStep": %d }"""
            epochs every stepEpochs epochs (epochs * stepsPerEpoch))

/// `declareRunWith` for a run snapshotted every epoch, one step an epoch.
let declareRun (dir: string) (epochs: int) = declareRunWith dir epochs 1 0 1

/// Runs `f`, expecting an `ArtifactException` whose message contains `containing`.
let expectArtifactError (containing: string) (f: unit -> 'a) =
    try
        f () |> ignore
        failtest "expected an ArtifactException"
    with ArtifactException message -> Expect.stringContains message containing "message names the fault"

/// Runs `f`, expecting an `ArtifactException` whose message contains `containing` and whose `Path` is
/// `path`, the file or directory at fault.
let expectArtifactAt (path: string) (containing: string) (f: unit -> 'a) =
    try
        f () |> ignore
        failtest "expected an ArtifactException"
    with :? ArtifactException as e ->
        Expect.stringContains e.Message containing "message names the fault"
        Expect.equal e.Path path "Path is the file or directory at fault"

/// Runs `f`, expecting a `SettingException` about `setting` whose detail contains `containing` and
/// names no command-line flag.
let expectSettingError (setting: AnalysisSetting) (containing: string) (f: unit -> 'a) =
    try
        f () |> ignore
        failtest "expected a SettingException"
    with :? SettingException as e ->
        Expect.equal e.Setting (string setting) "the setting at fault"
        Expect.stringContains e.Detail containing "detail names the fault"
        Expect.isFalse (e.Detail.Contains "--") "no flag in the library's words"
        Expect.isTrue (e.Message.EndsWith e.Detail) "Message ends with the detail"

let private names = [| "conv1"; "conv2"; "fc"; "bn1"; "layer.0" |]
let private tensorNames = [| "weight"; "bias"; "running_mean" |]

/// A random tensor: a shape of 0–4 small dimensions (a scalar included) with finite values.
let tensorGen =
    gen {
        let! layer = Gen.elements names
        let! tensor = Gen.elements tensorNames
        let! rank = Gen.choose (0, 4)
        let! shape = Gen.arrayOfLength rank (Gen.choose (1, 5))
        let n = Array.fold (*) 1 shape
        let! values = Gen.arrayOfLength n (Gen.choose (-100000, 100000) |> Gen.map (fun i -> float32 i / 1000.0f))
        return { Layer = layer; Tensor = tensor; Shape = shape; Values = values }
    }

/// A random snapshot of 1–6 tensors.
let snapshotGen =
    gen {
        let! epoch = Gen.choose (0, 500)
        let! step = Gen.choose (0, 100000)
        let! count = Gen.choose (1, 6)
        let! tensors = Gen.arrayOfLength count tensorGen
        return { Epoch = epoch; Step = int64 step; Tensors = tensors }
    }

type Arbitraries =
    static member Snapshot() = Arb.fromGen snapshotGen

let config = { FsCheckConfig.defaultConfig with arbitrary = [ typeof<Arbitraries> ]; maxTest = 40 }

/// Random access to values held in memory, as a checkpoint's stored tensors give it; it says it
/// holds `files` files open and counts the reads it serves in `reads`.
type MemoryValues(values: float32[], files: int, reads: int ref) =
    inherit SnapshotValues()
    override _.Read(offset, destination, start, count) =
        Threading.Interlocked.Increment &reads.contents |> ignore
        Array.blit values offset destination start count
    override _.Files = files
    override _.Dispose() = ()

/// A series held in memory: `values[i]` the flat values of `directory` at `times[i]`, each snapshot
/// streamed in pieces of at most `chunk` values and, with `sideBySide`, also readable at any position
/// (each snapshot then holding `files` files, and every read counted in `reads`).
let inMemorySeriesHolding (files: int) (reads: int ref) (directory: SnapshotReader.TensorDirectory) (times: int[]) (values: float32[][]) (sideBySide: bool) (chunk: int) : AnalysisSeries =
    { Name = "memory"; TimeUnit = TimeUnit.Step; LearningRate = [||]; GradientNoise = [||]; Source = "test"
      Snapshots =
        Array.map2 (fun time (v: float32[]) ->
            { Time = time; Source = sprintf "t=%d" time; Directory = (fun () -> directory)
              Stream = fun header nextChunk filled ->
                header directory
                let mutable at = 0
                while at < v.Length do
                    let target : float32[] = nextChunk ()
                    let count = min (min chunk target.Length) (v.Length - at)
                    Array.blit v at target 0 count
                    filled target count
                    at <- at + count
              Values = if sideBySide then Some(fun () -> new MemoryValues(v, files, reads) :> SnapshotValues) else None })
            times values }

/// `inMemorySeriesHolding` one file per snapshot.
let inMemorySeries directory times values sideBySide chunk = inMemorySeriesHolding 1 (ref 0) directory times values sideBySide chunk

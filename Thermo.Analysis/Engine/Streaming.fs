namespace Thermo.Analysis.Engine

open System
open System.Threading.Tasks
open Thermo.Analysis
open Thermo.Analysis.Format

/// A selected tensor: where its values sit in a snapshot's flat, directory-ordered values.
type internal Slot = { Layer: string; Tensor: string; Units: int; UnitSize: int; Start: int }

/// The engine's input side: which tensors of a snapshot are analysed (slots), and the values of a
/// window's snapshots (Thermo files or foreign checkpoints) streamed in 64 KB chunks, read on another core while the caller
/// accumulates the previous chunk. Nothing here knows about temperatures.
module internal SnapshotStream =
    let private failAt path fmt = Errors.artifactAt path fmt

    let private tensorSize (_, _, shape: int[]) = Array.fold (*) 1 shape

    /// Offset of each tensor in a snapshot's flat, directory-ordered values.
    let fileOffsets (directory: SnapshotReader.TensorDirectory) =
        directory |> Array.scan (fun at t -> at + tensorSize t) 0

    /// The selected tensors, positioned by their offsets in the file's flat value order, and the layers.
    /// Raises `SettingException` (`Layers`) for a requested layer without weights.
    let slotsOf (run: string) (directory: SnapshotReader.TensorDirectory) (options: AnalysisOptions) =
        let weightLayers = directory |> Array.filter (fun (_, t, _) -> t = "weight") |> Array.map (fun (l, _, _) -> l) |> Array.distinct
        let layers =
            match options.Layers with
            | None -> weightLayers
            | Some asked ->
                for l in asked do
                    if not (Array.contains l weightLayers) then
                        Errors.setting AnalysisSetting.Layers run "unknown layer '%s' (layers with weights: %s)" l (String.Join(", ", weightLayers))
                match asked |> Array.countBy id |> Array.tryFind (fun (_, c) -> c > 1) with
                | Some(l, _) -> Errors.setting AnalysisSetting.Layers run "names layer '%s' twice" l
                | None -> ()
                asked
        let offsets = fileOffsets directory
        [| for layer in layers do
               for tensorName in (if options.IncludeBias then [ "weight"; "bias" ] else [ "weight" ]) do
                   match directory |> Array.tryFindIndex (fun (l, t, _) -> l = layer && t = tensorName) with
                   | Some i ->
                       let _, _, shape = directory[i]
                       let units = if shape.Length = 0 then 1 else shape[0]
                       yield { Layer = layer; Tensor = tensorName; Units = units; UnitSize = tensorSize directory[i] / max 1 units; Start = offsets[i] }
                   | None -> () |], layers

    /// How a snapshot's tensor directory differs from the first one's, for the message that refuses
    /// it: the first tensor whose shape changed, or the layers that appeared or disappeared.
    let describeDifference (first: SnapshotReader.TensorDirectory) (other: SnapshotReader.TensorDirectory) =
        let name (l: string, t: string, _) = l + "." + t
        let shapes (d: SnapshotReader.TensorDirectory) = d |> Array.map (fun ((_, _, shape) as t) -> name t, shape) |> dict
        let a, b = shapes first, shapes other
        let shapeText (shape: int[]) = "[" + String.Join(", ", shape) + "]"
        let gone = first |> Array.map name |> Array.filter (fun k -> not (b.ContainsKey k))
        let added = other |> Array.map name |> Array.filter (fun k -> not (a.ContainsKey k))
        let changed = first |> Array.map name |> Array.filter (fun k -> b.ContainsKey k && a[k] <> b[k])
        if changed.Length > 0 then sprintf ": tensor %s has shape %s there but %s here" changed[0] (shapeText a[changed[0]]) (shapeText b[changed[0]])
        elif gone.Length > 0 || added.Length > 0 then
            let list (names: string[]) = String.Join(", ", names |> Array.truncate 5) + (if names.Length > 5 then ", …" else "")
            (if gone.Length > 0 then sprintf ": %s disappeared" (list gone) else "")
            + (if added.Length > 0 then sprintf "%s %s appeared" (if gone.Length > 0 then ";" else ":") (list added) else "")
        else ": the tensors come in another order"

    /// The one check that every snapshot of a series holds the tensors of its first: unless `directory`
    /// (the tensor directory of `source`) is `first` (that of `firstSource`, which `firstIs` describes,
    /// e.g. "the window's first snapshot"), fails with "SOURCE: its tensors differ from those of FIRST,
    /// FIRSTIS" and `describeDifference`.
    let requireSameTensors (first: SnapshotReader.TensorDirectory) (firstSource: string) (firstIs: string) (source: string) (directory: SnapshotReader.TensorDirectory) =
        if directory <> first then
            failAt source "its tensors differ from those of %s, %s%s" firstSource firstIs (describeDifference first directory)

    /// Index of the first NaN or ±∞ in `values`, or −1; a SIMD pass (|x| ≤ MaxValue fails for both).
    let firstNonFinite (values: ReadOnlySpan<float32>) =
        let width = Numerics.Vector<float32>.Count
        let limit = Numerics.Vector<float32>(Single.MaxValue)
        let mutable i = 0
        while i + width <= values.Length && Numerics.Vector.LessThanOrEqualAll(Numerics.Vector.Abs(Numerics.Vector<float32>(values.Slice(i, width))), limit) do
            i <- i + width
        while i < values.Length && Single.IsFinite values[i] do
            i <- i + 1
        if i < values.Length then i else -1

    /// Fails naming layer, tensor and time when a chunk of a snapshot (values offset.. of the flat
    /// order) holds NaN or ±∞.
    let checkFinite (path: string) (timeName: string) (epoch: int) (directory: SnapshotReader.TensorDirectory) (offset: int) (values: ReadOnlySpan<float32>) =
        let bad = firstNonFinite values
        if bad >= 0 then
            let flat = offset + bad
            let starts = fileOffsets directory
            let i = min (starts |> Array.findIndexBack (fun start -> start <= flat)) (directory.Length - 1)
            let layer, tensor, _ = directory[i]
            failAt path "%s.%s holds %g at flat index %d (%s %d); the run diverged or the file is corrupt" layer tensor values[bad] (flat - starts[i]) timeName epoch

    /// What the reader thread hands the accumulating thread.
    type private Feed =
        | FileStart of file: int * epoch: int * directory: SnapshotReader.TensorDirectory
        | Values of file: int * offset: int * chunk: float32[] * count: int
        | Finished
        | Failed of Runtime.ExceptionServices.ExceptionDispatchInfo

    /// Values per chunk: 64 KB, small beside any snapshot worth streaming, large enough to amortise
    /// the hand-over between threads. Chunk k holds the flat positions k·chunkLength .. (k+1)·chunkLength − 1
    /// of every snapshot, in both of the engine's passes, so that both add the same partial sums in
    /// the same order.
    let chunkLength = 1 <<< 14

    /// Streams the values of `snapshots`, in snapshot and row order, through `consume snapshot offset
    /// chunk count` on the caller's thread while a reader thread decodes up to a few chunks ahead (the
    /// work of the two cores overlaps, and memory is a handful of chunks whatever the snapshots' size).
    /// `onSnapshot snapshot time directory` comes before a snapshot's first chunk. An exception on
    /// either side stops both.
    let streamSnapshots (snapshots: SeriesSnapshot[]) (onSnapshot: int -> int -> SnapshotReader.TensorDirectory -> unit) (consume: int -> int -> float32[] -> int -> unit) =
        use pool = new Collections.Concurrent.BlockingCollection<float32[]>()
        for _ in 1..6 do pool.Add(Array.zeroCreate chunkLength)
        use feed = new Collections.Concurrent.BlockingCollection<Feed>(4)
        use cancel = new Threading.CancellationTokenSource()
        let token = cancel.Token
        let reader =
            Task.Run(fun () ->
                try
                    for i in 0 .. snapshots.Length - 1 do
                        let mutable offset = 0
                        // A source may hand back a chunk before it is full (a Parquet row group or an
                        // Arrow batch ends there); such values are gathered into whole chunks, so that
                        // chunk k always holds flat positions k·chunkLength .. and the sums do not depend
                        // on how the source is laid out.
                        let mutable pending: float32[] = null
                        let mutable pendingCount = 0
                        let send (chunk: float32[]) (count: int) =
                            feed.Add(Values(i, offset, chunk, count), token)
                            offset <- offset + count
                        snapshots[i].Stream
                            (fun directory -> feed.Add(FileStart(i, snapshots[i].Time, directory), token))
                            (fun () -> pool.Take token)
                            (fun chunk count ->
                                if isNull pending && count = chunk.Length then send chunk count
                                else
                                    let mutable at = 0
                                    while at < count do
                                        if isNull pending then
                                            pending <- pool.Take token
                                            pendingCount <- 0
                                        let n = min (count - at) (pending.Length - pendingCount)
                                        Array.blit chunk at pending pendingCount n
                                        pendingCount <- pendingCount + n
                                        at <- at + n
                                        if pendingCount = pending.Length then
                                            send pending pendingCount
                                            pending <- null
                                    pool.Add chunk)
                        if not (isNull pending) then send pending pendingCount
                    feed.Add(Finished, token)
                with
                | :? OperationCanceledException -> ()
                | e -> try feed.Add(Failed(Runtime.ExceptionServices.ExceptionDispatchInfo.Capture e), token) with :? OperationCanceledException -> ())
        try
            let mutable running = true
            while running do
                match feed.Take() with
                | FileStart(i, epoch, directory) ->
                    // Each file leaves about 14 KB of garbage (Parquet metadata, readers). The runtime's
                    // gen-0 budget is sized from the cache, tens of MB here, so without a young-generation
                    // collection now and then that garbage, not the analysis, would set the footprint for
                    // any model under ~10M parameters. A gen-0 collection with nothing young alive costs
                    // microseconds.
                    if i % 16 = 15 then GC.Collect(0, GCCollectionMode.Forced, false)
                    onSnapshot i epoch directory
                | Values(i, offset, chunk, count) ->
                    consume i offset chunk count
                    pool.Add chunk
                | Finished -> running <- false
                | Failed info -> info.Throw()
        finally
            cancel.Cancel()
            try reader.Wait() with _ -> ()

namespace Thermo.Analysis

open System
open System.IO
open System.Threading.Tasks

/// What a temperature group is.
type Grouping =
    /// All weights of a layer.
    | Layer = 0
    /// One output unit: a conv filter W[o,:,:,:] or a linear/GCN row W[o,:].
    | Unit = 1
    /// A single weight.
    | Weight = 2

/// Options of one analysis.
type AnalysisOptions =
    { Window: WindowSpec
      Grouping: Grouping
      /// Layers to analyse (None: every layer with a `weight` tensor).
      Layers: string[] option
      /// Include each unit's bias in its group (SPEC: weights only by default).
      IncludeBias: bool
      Physics: Physics
      /// Layers whose unit groups get MSD curves and fits (None: the first analysed layer).
      MsdLayers: string[] option
      /// Lag range of the α and D fits (None: α over 1..n/2, D over 1..n/4, at least 2 lags).
      FitLags: (int * int) option }

    static member Default =
        { Window = Auto; Grouping = Grouping.Unit; Layers = None; IncludeBias = false; Physics = Physics.Default
          MsdLayers = None; FitLags = None }

    // Copy-and-update for C# callers, which cannot use F#'s `{ o with … }`.

    /// These options over another window.
    member o.WithWindow(window: WindowSpec) = { o with Window = window }
    /// These options with another grouping.
    member o.WithGrouping(grouping: Grouping) = { o with Grouping = grouping }
    /// These options for the named layers only (null: every layer with weights).
    member o.WithLayers(layers: string[]) = { o with Layers = Option.ofObj layers }
    /// These options with MSD for the named layers (empty: none; null: the first analysed layer).
    member o.WithMsdLayers(layers: string[]) = { o with MsdLayers = Option.ofObj layers }

/// Identity of a group: unit and weight are −1 where the grouping does not resolve them.
type GroupKey = { Layer: string; Unit: int; Weight: int }

/// One group's results.
type GroupResult =
    { Key: GroupKey
      Temperature: GroupTemperature
      /// Σ|w| of the group's weights at the window's last snapshot.
      L1Norm: float
      /// 1 = hottest group of its layer.
      Rank: int
      /// 1 = highest oscillation temperature of its layer.
      OscillationRank: int }

/// One group's diffusion curves and fits.
type GroupDiffusionResult =
    { Key: GroupKey
      Curves: GroupDiffusion
      /// α from MSD ∝ τ^α.
      Alpha: FitResult
      /// D from the drift-corrected MSD ≈ 2·D·τ·Δt.
      Diffusion: FitResult }

/// Everything `analyze` computes for one run.
type AnalysisResult =
    { Run: string
      Window: EquilibriumWindow
      Physics: Physics
      Grouping: Grouping
      Groups: GroupResult[]
      /// Per layer: T of the whole layer.
      Layers: GroupResult[]
      /// T_G(e) for e = From+1..To, for every layer and (with unit grouping) every unit.
      Instantaneous: (GroupKey * float[])[]
      Diffusion: GroupDiffusionResult[]
      /// Per layer: Spearman correlation of the units' temperature and L1-norm rankings.
      TemperatureL1Spearman: (string * float)[]
      /// Per layer: decay of the gradient-noise signal over the window (empty without gradnoise.parquet).
      NoiseDecay: NoiseDecay[]
      /// Common decay rate of all layers' gradient noise and the pooled fit's R².
      CommonNoiseDecay: (float * float) option }

/// The streaming engine: one pass over the window's snapshots with per-weight float64 running sums,
/// so memory is O(parameters); only the MSD groups' trajectories are held. The next snapshot file is
/// read on another core while the current one is accumulated.
module Engine =
    let private fail fmt = Printf.kprintf (fun m -> raise (ArtifactException m)) fmt

    /// A selected tensor: where its values sit in a snapshot's flat, directory-ordered values.
    type private Slot = { Layer: string; Tensor: string; Units: int; UnitSize: int; Start: int }

    /// The per-epoch snapshot files of the window, checking none is missing or duplicated.
    let windowFiles (run: string) (files: (int * string)[]) (window: EquilibriumWindow) =
        let inWindow = files |> Array.filter (fun (e, _) -> e >= window.From && e <= window.To)
        let duplicated = inWindow |> Array.countBy fst |> Array.filter (fun (_, c) -> c > 1) |> Array.map fst
        if duplicated.Length > 0 then
            fail "%s: epochs %s have more than one snapshot file (both .parquet and .arrow?)" run (String.Join(", ", duplicated))
        let present = inWindow |> Array.map fst |> Set.ofArray
        let missing = [| window.From .. window.To |] |> Array.filter (fun e -> not (present.Contains e))
        if missing.Length > 0 then
            let shown = missing |> Array.truncate 20 |> Array.map string
            fail "%s: window %d:%d lacks the snapshots of epochs %s%s" run window.From window.To (String.Join(", ", shown)) (if missing.Length > 20 then ", …" else "")
        inWindow |> Array.map snd

    /// The named column of a table read from `path`, or a message naming the file and the column.
    let private column (path: string) (columns: Column list) (name: string) =
        match columns |> List.tryFind (fun c -> c.Name = name) with
        | Some c -> c
        | None -> fail "%s: no column '%s'" path name

    let private readMetrics (run: string) =
        let path = Path.Combine(run, "metrics.parquet")
        if not (File.Exists path) then None
        else
            let get = column path (Tables.read path "metrics")
            let ints name = match get name with Int32Column(_, v) -> v | _ -> fail "%s: column %s is not int32" path name
            let floats name = match get name with Float64Column(_, v) -> v | _ -> fail "%s: column %s is not float64" path name
            Some(ints "epoch", floats "test_loss", floats "test_accuracy")

    let private readGradientNoise (run: string) =
        let path = Path.Combine(run, "gradnoise.parquet")
        if not (File.Exists path) then [||]
        else
            let get = column path (Tables.read path "gradnoise")
            match get "epoch", get "layer", get "mean" with
            | Int32Column(_, e), StringColumn(_, l), Float64Column(_, m) -> Array.init e.Length (fun i -> e[i], l[i], m[i])
            | _ -> fail "%s: columns epoch, layer, mean are not int32, string, float64" path

    let private tensorSize (_, _, shape: int[]) = Array.fold (*) 1 shape

    /// Offset of each tensor in a snapshot's flat, directory-ordered values.
    let private fileOffsets (directory: SnapshotReader.TensorDirectory) =
        directory |> Array.scan (fun at t -> at + tensorSize t) 0

    /// The selected tensors, positioned by their offsets in the file's flat value order, and the layers.
    let private slotsOf (path: string) (directory: SnapshotReader.TensorDirectory) (options: AnalysisOptions) =
        let weightLayers = directory |> Array.filter (fun (_, t, _) -> t = "weight") |> Array.map (fun (l, _, _) -> l) |> Array.distinct
        let layers =
            match options.Layers with
            | None -> weightLayers
            | Some asked ->
                for l in asked do
                    if not (Array.contains l weightLayers) then
                        fail "%s: unknown layer '%s' (layers with weights: %s)" path l (String.Join(", ", weightLayers))
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

    /// Index of the first NaN or ±∞ in `values`, or −1; a SIMD pass (|x| ≤ MaxValue fails for both).
    let private firstNonFinite (values: ReadOnlySpan<float32>) =
        let width = Numerics.Vector<float32>.Count
        let limit = Numerics.Vector<float32>(Single.MaxValue)
        let mutable i = 0
        while i + width <= values.Length && Numerics.Vector.LessThanOrEqualAll(Numerics.Vector.Abs(Numerics.Vector<float32>(values.Slice(i, width))), limit) do
            i <- i + width
        while i < values.Length && Single.IsFinite values[i] do
            i <- i + 1
        if i < values.Length then i else -1

    /// Fails naming layer, tensor and epoch when a chunk of a snapshot (values offset.. of the flat
    /// order) holds NaN or ±∞.
    let private checkFinite (path: string) (epoch: int) (directory: SnapshotReader.TensorDirectory) (offset: int) (values: ReadOnlySpan<float32>) =
        let bad = firstNonFinite values
        if bad >= 0 then
            let flat = offset + bad
            let starts = fileOffsets directory
            let i = min (starts |> Array.findIndexBack (fun start -> start <= flat)) (directory.Length - 1)
            let layer, tensor, _ = directory[i]
            fail "%s: %s.%s holds %g at flat index %d (epoch %d); the run diverged or the file is corrupt" path layer tensor values[bad] (flat - starts[i]) epoch

    // The engine's hot loops, over spans so the JIT keeps them tight. Sums of squared differences
    // are scaled by 1/Δt² (or 1/(nΔt)²) once per range, not per value.

    /// Σ (x_i − latest_i)² for the values of one range, then latest ← x. SIMD: float32 lanes widened
    /// to float64 before the difference, so each term is exactly the scalar one (only the order of
    /// the additions differs).
    let private stepSquares (current: ReadOnlySpan<float32>, latest: Span<float32>) =
        let width = Numerics.Vector<float32>.Count
        let mutable acc = Numerics.Vector<float>.Zero
        let mutable xl = Numerics.Vector<float>.Zero
        let mutable xh = Numerics.Vector<float>.Zero
        let mutable yl = Numerics.Vector<float>.Zero
        let mutable yh = Numerics.Vector<float>.Zero
        let mutable i = 0
        while i + width <= current.Length do
            let x = Numerics.Vector<float32>(current.Slice(i, width))
            let y = Numerics.Vector<float32>(Span.op_Implicit (latest.Slice(i, width)) : ReadOnlySpan<float32>)
            Numerics.Vector.Widen(x, &xl, &xh)
            Numerics.Vector.Widen(y, &yl, &yh)
            let dl = xl - yl
            let dh = xh - yh
            acc <- acc + dl * dl + dh * dh
            x.CopyTo(latest.Slice(i, width))
            i <- i + width
        let mutable sum = Numerics.Vector.Sum acc
        while i < current.Length do
            let x = current[i]
            let d = float x - float latest[i]
            sum <- sum + d * d
            latest[i] <- x
            i <- i + 1
        sum

    /// `stepSquares`, also adding each weight's scaled square to `squares`.
    let private stepSquaresInto (current: ReadOnlySpan<float32>, latest: Span<float32>, squares: Span<float>, scale: float) =
        let mutable sum = 0.0
        let mutable i = 0
        while i < current.Length do
            let x = current[i]
            let d = float x - float latest[i]
            sum <- sum + d * d
            squares[i] <- squares[i] + d * d * scale
            latest[i] <- x
            i <- i + 1
        sum

    /// Σ (b_i − a_i)².
    let private squaredDifferences (a: ReadOnlySpan<float32>, b: ReadOnlySpan<float32>) =
        let mutable sum = 0.0
        let mutable i = 0
        while i < a.Length do
            let d = float b[i] - float a[i]
            sum <- sum + d * d
            i <- i + 1
        sum

    /// `squaredDifferences`, also storing each scaled square in `squares`.
    let private squaredDifferencesInto (a: ReadOnlySpan<float32>, b: ReadOnlySpan<float32>, squares: Span<float>, scale: float) =
        let mutable sum = 0.0
        let mutable i = 0
        while i < a.Length do
            let d = float b[i] - float a[i]
            sum <- sum + d * d
            squares[i] <- d * d * scale
            i <- i + 1
        sum

    /// What the reader thread hands the accumulating thread.
    type private Feed =
        | FileStart of file: int * epoch: int * directory: SnapshotReader.TensorDirectory
        | Values of file: int * offset: int * chunk: float32[] * count: int
        | Finished
        | Failed of Runtime.ExceptionServices.ExceptionDispatchInfo

    /// Values per chunk: 64 KB, small beside any snapshot worth streaming, large enough to amortise
    /// the hand-over between threads.
    let private chunkLength = 1 <<< 14

    /// Streams the values of `paths`, in file and row order, through `consume file offset chunk count`
    /// on the caller's thread while a reader thread decodes up to a few chunks ahead (the work of the
    /// two cores overlaps, and memory is a handful of chunks whatever the files' size). `onFile file
    /// epoch directory` comes before a file's first chunk. An exception on either side stops both.
    let private streamFiles (paths: string[]) (onFile: int -> int -> SnapshotReader.TensorDirectory -> unit) (consume: int -> int -> float32[] -> int -> unit) =
        use pool = new Collections.Concurrent.BlockingCollection<float32[]>()
        for _ in 1..4 do pool.Add(Array.zeroCreate chunkLength)
        use feed = new Collections.Concurrent.BlockingCollection<Feed>(4)
        use cancel = new Threading.CancellationTokenSource()
        let token = cancel.Token
        let reader =
            Task.Run(fun () ->
                try
                    for i in 0 .. paths.Length - 1 do
                        let offset = ref 0
                        SnapshotReader.streamValues paths[i]
                            (fun epoch _ directory -> feed.Add(FileStart(i, epoch, directory), token))
                            (fun () -> pool.Take token)
                            (fun chunk count ->
                                feed.Add(Values(i, offset.Value, chunk, count), token)
                                offset.Value <- offset.Value + count)
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
                    onFile i epoch directory
                | Values(i, offset, chunk, count) ->
                    consume i offset chunk count
                    pool.Add chunk
                | Finished -> running <- false
                | Failed info -> info.Throw()
        finally
            cancel.Cancel()
            try reader.Wait() with _ -> ()

    /// A group's weights as ranges (start, length) of the gathered array: a unit is one range of its
    /// weight tensor (plus one bias element), a layer one range per tensor. Ranges, not index arrays,
    /// keep the engine's memory at a few bytes per weight.
    type private Group = { Key: GroupKey; Ranges: struct (int * int)[] }

    let private size (g: Group) = g.Ranges |> Array.sumBy (fun struct (_, l) -> l)

    /// Unit groups (which partition the selected weights), layer groups, and the requested groups.
    let private buildGroups (slots: Slot[]) (layers: string[]) (grouping: Grouping) =
        let unitGroups =
            layers |> Array.collect (fun l ->
                let own = slots |> Array.filter (fun s -> s.Layer = l)
                let units = own |> Array.filter (fun s -> s.Tensor = "weight") |> Array.map (fun s -> s.Units) |> Array.max
                Array.init units (fun u ->
                    { Key = { Layer = l; Unit = u; Weight = -1 }
                      Ranges = own |> Array.filter (fun s -> u < s.Units) |> Array.map (fun s -> struct (s.Start + u * s.UnitSize, s.UnitSize)) }))
        let layerGroups =
            layers |> Array.map (fun l ->
                { Key = { Layer = l; Unit = -1; Weight = -1 }
                  Ranges = slots |> Array.filter (fun s -> s.Layer = l) |> Array.map (fun s -> struct (s.Start, s.Units * s.UnitSize)) })
        let groups =
            match grouping with
            | Grouping.Layer -> layerGroups
            | Grouping.Unit -> unitGroups
            | _ ->
                slots |> Array.collect (fun s ->
                    Array.init (s.Units * s.UnitSize) (fun i ->
                        { Key = { Layer = s.Layer; Unit = i / s.UnitSize; Weight = (if s.Tensor = "bias" then -2 else i % s.UnitSize) }
                          Ranges = [| struct (s.Start + i, 1) |] }))
        groups, layerGroups, unitGroups

    /// A fit that cannot be made (e.g. an MSD that is zero at every lag) is reported as NaN, not an error.
    let private fitOrNaN (fit: unit -> FitResult) =
        try fit ()
        with :? ArgumentException -> { Slope = nan; Intercept = nan; RSquared = nan; RangeFrom = nan; RangeTo = nan; Points = 0 }

    let private ranksWithinLayer (keys: GroupKey[]) (scores: float[]) =
        let ranks = Array.zeroCreate keys.Length
        keys |> Array.mapi (fun i k -> k.Layer, i) |> Array.groupBy fst
        |> Array.iter (fun (_, members) ->
            let idx = members |> Array.map snd
            Ranking.descending (idx |> Array.map (fun i -> scores[i])) |> Array.iteri (fun position local -> ranks[idx[local]] <- position + 1))
        ranks

    /// A contiguous run of selected values in the flat order: a range of one unit group, and the
    /// trajectory row of its first value when the unit is an MSD group (−1 otherwise).
    [<Struct>]
    type private Segment = { Start: int; Length: int; Unit: int; MsdRow: int }

    /// As `analyze`, calling `progress done total` as each snapshot file is reached (the window's files
    /// and the first one read again for the drift), for a progress display.
    ///
    /// Memory: one float32 copy of the selected values (the latest snapshot, updated in place), the
    /// per-unit sums of v² per epoch, the MSD groups' trajectories as stored (float32, weights × epochs)
    /// and a few 64 KB chunks; with `Grouping.Weight`, also a float64 sum of v² and the drift per weight.
    /// The first snapshot is not kept: the drift needs it once more at the end, so it is read again.
    let analyzeWithProgress (run: string) (options: AnalysisOptions) (progress: int -> int -> unit) : AnalysisResult =
        let files = SnapshotReader.listEpochFiles run
        let epochs = files |> Array.map fst |> Array.distinct
        let window = Window.resolve run epochs (if options.Window = Auto then readMetrics run else None) options.Window
        let paths = windowFiles run files window
        let physics = options.Physics
        let dt = physics.Dt
        let n = window.Velocities
        let _, _, directory = SnapshotReader.readHeader paths[0]
        let slots, layers = slotsOf paths[0] directory options
        let total = (fileOffsets directory)[directory.Length]
        let groups, layerGroups, unitGroups = buildGroups slots layers options.Grouping
        let msdLayers = options.MsdLayers |> Option.defaultValue [| layers[0] |]
        for l in msdLayers do
            if not (Array.contains l layers) then fail "%s: --msd-layers names '%s', which is not analysed (analysed: %s)" run l (String.Join(", ", layers))
        let isMsdUnit (g: Group) = n >= 2 && Array.contains g.Key.Layer msdLayers
        // Trajectory rows of the MSD units, in unit order: unit u owns rows msdRowStart[u] ..
        let msdRowStart = unitGroups |> Array.scan (fun row g -> if isMsdUnit g then row + size g else row) 0
        let trajectories = Array.init msdRowStart[unitGroups.Length] (fun _ -> Array.zeroCreate<float32> (n + 1))
        let segments =
            unitGroups
            |> Array.mapi (fun u g ->
                g.Ranges |> Array.mapi (fun r struct (start, length) ->
                    let before = g.Ranges |> Array.take r |> Array.sumBy (fun struct (_, l) -> l)
                    { Start = start; Length = length; Unit = u; MsdRow = (if isMsdUnit g then msdRowStart[u] + before else -1) }))
            |> Array.concat
            |> Array.sortBy (fun s -> s.Start)
        let perWeight = options.Grouping = Grouping.Weight
        // Σ_k v_k(e)² of each unit per velocity e (the units partition the selected weights).
        let unitSums = Array.init unitGroups.Length (fun _ -> Array.zeroCreate<float> n)
        let unitDrift = Array.zeroCreate<float> unitGroups.Length
        let weightSumSquares = if perWeight then Array.zeroCreate<float> total else [||]
        let weightDrift = if perWeight then Array.zeroCreate<float> total else [||]
        // The selected values of the latest snapshot streamed so far; the last one when done.
        let latest = Array.zeroCreate<float32> total
        // Files 0..m are the window; file m+1 is the window's first snapshot again, for the drift.
        let m = paths.Length - 1
        let driftPass = m + 1
        let mutable epoch = 0
        let mutable cursor = 0
        let onFile (file: int) (fileEpoch: int) (fileDirectory: SnapshotReader.TensorDirectory) =
            if fileDirectory <> directory then
                fail "%s: its tensors differ from those of %s, the window's first snapshot" paths[file % (m + 1)] paths[0]
            epoch <- fileEpoch
            cursor <- 0
            progress file (m + 2)
        let consume (file: int) (offset: int) (chunk: float32[]) (count: int) =
            if file <> driftPass then checkFinite paths[file] epoch directory offset (ReadOnlySpan<float32>(chunk, 0, count))
            let stop = offset + count
            while cursor < segments.Length && segments[cursor].Start + segments[cursor].Length <= offset do
                cursor <- cursor + 1
            let mutable s = cursor
            while s < segments.Length && segments[s].Start < stop do
                let segment = segments[s]
                let from = max segment.Start offset
                let until = min (segment.Start + segment.Length) stop
                let current = ReadOnlySpan<float32>(chunk, from - offset, until - from)
                if file = 0 then
                    current.CopyTo(Span<float32>(latest, from, until - from))
                elif file = driftPass then
                    // v̄_k = (w_k(b) − w_k(a)) / (n Δt), with w(b) in `latest` and w(a) read again.
                    let scale = 1.0 / (float n * dt) ** 2.0
                    let sum =
                        if perWeight then squaredDifferencesInto (current, ReadOnlySpan<float32>(latest, from, until - from), Span<float>(weightDrift, from, until - from), scale)
                        else squaredDifferences (current, ReadOnlySpan<float32>(latest, from, until - from))
                    unitDrift[segment.Unit] <- unitDrift[segment.Unit] + sum * scale
                else
                    let target = Span<float32>(latest, from, until - from)
                    let sum =
                        if perWeight then stepSquaresInto (current, target, Span<float>(weightSumSquares, from, until - from), 1.0 / (dt * dt))
                        else stepSquares (current, target)
                    unitSums[segment.Unit].[file - 1] <- unitSums[segment.Unit].[file - 1] + sum / (dt * dt)
                if segment.MsdRow >= 0 && file <> driftPass then
                    for k in from .. until - 1 do
                        trajectories[segment.MsdRow + k - segment.Start].[file] <- chunk[k - offset]
                s <- s + 1
        streamFiles (Array.append paths [| paths[0] |]) onFile consume
        let factor = physics.Factor
        let unitTemperature u =
            let count = size unitGroups[u]
            let t = factor * Array.sum unitSums[u] / (float n * float count)
            let drift = factor * unitDrift[u] / float count
            { Temperature = t; Drift = drift; Oscillation = t - drift; Weights = count }
        let l1 (g: Group) =
            let mutable sum = 0.0
            for struct (start, length) in g.Ranges do
                for k in start .. start + length - 1 do sum <- sum + abs (float latest[k])
            sum
        let unitTemperatures = Array.init unitGroups.Length unitTemperature
        let unitL1 = unitGroups |> Array.map l1
        let unitsOf layer = unitGroups |> Array.mapi (fun u g -> u, g) |> Array.filter (fun (_, g) -> g.Key.Layer = layer) |> Array.map fst
        // A layer's sums are its units' sums: the same arithmetic, weighted by the units' sizes.
        let layerTemperature (layer: string) =
            let units = unitsOf layer
            let count = units |> Array.sumBy (fun u -> size unitGroups[u])
            let t = factor * (units |> Array.sumBy (fun u -> Array.sum unitSums[u])) / (float n * float count)
            let drift = factor * (units |> Array.sumBy (fun u -> unitDrift[u])) / float count
            { Temperature = t; Drift = drift; Oscillation = t - drift; Weights = count }
        let layerResults =
            layerGroups |> Array.map (fun g -> { Key = g.Key; Temperature = layerTemperature g.Key.Layer; L1Norm = l1 g; Rank = 1; OscillationRank = 1 })
        let temperatures, groupL1 =
            match options.Grouping with
            | Grouping.Unit -> unitTemperatures, unitL1
            | Grouping.Layer -> layerResults |> Array.map (fun r -> r.Temperature), layerResults |> Array.map (fun r -> r.L1Norm)
            | _ ->
                groups |> Array.map (fun g ->
                    let struct (k, _) = g.Ranges[0]
                    let t = factor * weightSumSquares[k] / float n
                    let drift = factor * weightDrift[k]
                    { Temperature = t; Drift = drift; Oscillation = t - drift; Weights = 1 }),
                groups |> Array.map l1
        let keys = groups |> Array.map (fun g -> g.Key)
        let ranks = ranksWithinLayer keys (temperatures |> Array.map (fun t -> t.Temperature))
        let oscillationRanks = ranksWithinLayer keys (temperatures |> Array.map (fun t -> t.Oscillation))
        let results =
            Array.init groups.Length (fun i ->
                { Key = keys[i]; Temperature = temperatures[i]; L1Norm = groupL1[i]; Rank = ranks[i]; OscillationRank = oscillationRanks[i] })
        let unitInstantaneous = unitGroups |> Array.mapi (fun u g -> g.Key, unitSums[u] |> Array.map (fun s -> factor * s / float (size g)))
        let layerInstantaneous =
            layerGroups |> Array.map (fun lg ->
                let units = unitsOf lg.Key.Layer
                let count = float (size lg)
                lg.Key, Array.init n (fun e -> factor * (units |> Array.sumBy (fun u -> unitSums[u].[e])) / count))
        let instantaneousSeries = if options.Grouping = Grouping.Unit then Array.append layerInstantaneous unitInstantaneous else layerInstantaneous
        let spearman =
            layers |> Array.map (fun layer ->
                let units = unitsOf layer
                layer, Ranking.spearman (units |> Array.map (fun u -> unitTemperatures[u].Temperature)) (units |> Array.map (fun u -> unitL1[u])))
        let fitFrom, alphaTo, diffusionTo =
            match options.FitLags with
            | Some(a, b) ->
                if a < 1 || b > n || b - a < 1 then fail "%s: --fit-lags %d:%d must lie in 1..%d with at least two lags" run a b n
                a, b, b
            | None -> 1, max 2 (n / 2), max 2 (n / 4)
        let diffusion =
            unitGroups
            |> Array.mapi (fun u g -> u, g)
            |> Array.filter (fun (_, g) -> isMsdUnit g)
            |> Array.map (fun (u, g) ->
                let rows = Array.init (size g) (fun r -> trajectories[msdRowStart[u] + r] |> Array.map float)
                let curves = GroupDiffusion.compute rows
                { Key = g.Key; Curves = curves
                  Alpha = fitOrNaN (fun () -> Fits.anomalousExponent curves.Lags curves.Msd fitFrom (min n alphaTo))
                  Diffusion = fitOrNaN (fun () -> Fits.diffusionConstant dt curves.Lags curves.DriftCorrectedMsd fitFrom (min n diffusionTo)) })
        let noise = readGradientNoise run
        { Run = run; Window = window; Physics = physics; Grouping = options.Grouping; Groups = results; Layers = layerResults
          Instantaneous = instantaneousSeries
          Diffusion = diffusion; TemperatureL1Spearman = spearman
          NoiseDecay = GradientNoise.layerDecay noise (max 1 window.From) window.To
          CommonNoiseDecay = GradientNoise.commonDecay noise (max 1 window.From) window.To }

    /// Analyses one run directory: resolves the window, streams its snapshots once, and returns every
    /// table of `analyze`. Raises `ArtifactException` (one message naming run, file, layer or epoch)
    /// for any input it cannot use.
    let analyze (run: string) (options: AnalysisOptions) : AnalysisResult = analyzeWithProgress run options (fun _ _ -> ())

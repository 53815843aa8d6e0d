namespace Thermo.Analysis.Engine

open System
open Thermo.Analysis
open Thermo.Analysis.Format
open Thermo.Analysis.Run
open Thermo.Analysis.Physics

/// The streaming engine: one pass over the window's snapshots with per-weight float64 running sums,
/// so memory is O(parameters); only the MSD groups' trajectories are held. The next snapshot file is
/// read on another core while the current one is accumulated.
module Engine =
    let private failAt path fmt = Errors.artifactAt path fmt

    /// The per-epoch snapshot files of the window, checking none is missing or duplicated.
    let windowFiles (run: string) (files: SnapshotFile[]) (window: EquilibriumWindow) =
        let inWindow = files |> Array.filter (fun f -> f.Time >= window.From && f.Time <= window.To)
        let duplicated = inWindow |> Array.countBy (fun f -> f.Time) |> Array.filter (fun (_, c) -> c > 1) |> Array.map fst
        if duplicated.Length > 0 then
            failAt run "epochs %s have more than one snapshot file (both .parquet and .arrow?)" (String.Join(", ", duplicated))
        let present = inWindow |> Array.map (fun f -> f.Time) |> Set.ofArray
        let missing = window.Epochs |> Array.filter (fun e -> not (present.Contains e))
        if missing.Length > 0 then
            let shown = missing |> Array.truncate 20 |> Array.map string
            failAt run "window %d:%d lacks the snapshots of epochs %s%s" window.From window.To (String.Join(", ", shown)) (if missing.Length > 20 then ", …" else "")
        let wanted = Set.ofArray window.Epochs
        inWindow |> Array.filter (fun f -> wanted.Contains f.Time) |> Array.map (fun f -> f.Path)

    /// The `auto` window's test curves from RUN/metrics.parquet, if the run has one.
    let private readMetrics (run: string) =
        let path = RunLayout.metrics run
        if not (IO.File.Exists path) then None
        else
            let curves = MetricsTable.readTestCurves path
            Some(curves.Epochs, curves.TestLoss, curves.TestAccuracy)

    /// (epoch, layer, mean s_I) rows of RUN/gradnoise.parquet; none without the file.
    let private readGradientNoise (run: string) =
        let path = RunLayout.gradNoise run
        if not (IO.File.Exists path) then [||] else GradNoiseTable.readMeans path

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
                // One array per unit, no intermediate ones: a language model has 10⁵ units.
                Array.init units (fun u ->
                    let ranges = Array.zeroCreate<struct (int * int)> (own |> Array.sumBy (fun s -> if u < s.Units then 1 else 0))
                    let mutable k = 0
                    for s in own do
                        if u < s.Units then
                            ranges[k] <- struct (s.Start + u * s.UnitSize, s.UnitSize)
                            k <- k + 1
                    { Key = { Layer = l; Unit = u; Weight = -1 }; Ranges = ranges }))
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

    /// Runs independent pure computations at once, on every core, and rethrows the first one's own
    /// exception (not an AggregateException).
    let private runTogether (parts: (unit -> unit)[]) =
        try Threading.Tasks.Parallel.Invoke(parts |> Array.map (fun f -> Action f))
        with :? AggregateException as e -> Runtime.ExceptionServices.ExceptionDispatchInfo.Throw e.InnerExceptions[0]

    /// The groups of each layer (indices into `keys`, in order), found once for all the rankings.
    let private layerMembers (keys: GroupKey[]) : int[][] =
        let members = Collections.Generic.Dictionary<string, ResizeArray<int>>()
        keys |> Array.iteri (fun i k ->
            match members.TryGetValue k.Layer with
            | true, list -> list.Add i
            | _ -> members[k.Layer] <- ResizeArray [ i ])
        members.Values |> Seq.map (fun list -> list.ToArray()) |> Seq.toArray

    /// Each group's rank among its layer's groups (`layerMembers`) by `scores`, 1 = highest.
    let private ranksWithinLayer (members: int[][]) (scores: float[]) =
        let ranks = Array.zeroCreate scores.Length
        for idx in members do
            Ranking.descending (idx |> Array.map (fun i -> scores[i])) |> Array.iteri (fun position local -> ranks[idx[local]] <- position + 1)
        ranks

    /// A contiguous run of selected values in the flat order: a range of one unit group, and the
    /// trajectory row of its first value when the unit is an MSD group (−1 otherwise).
    [<Struct>]
    type private Segment = { Start: int; Length: int; Unit: int; MsdRow: int }

    /// The run directory's series of `unit` (per-epoch or per-step snapshot files) over the window
    /// `options` asks for: the window resolved against the files (and metrics, for `auto`), and the
    /// window's files as snapshots to stream.
    let private trainedRunSeries (unit: TimeUnit) (run: string) (options: AnalysisOptions) : AnalysisSeries * EquilibriumWindow =
        let files = if unit = TimeUnit.Step then SnapshotSeries.stepFiles run options.Spacing else SnapshotSeries.epochFiles run options.Spacing
        let epochs = files |> Array.map (fun f -> f.Time) |> Array.distinct
        let inferred (w: EquilibriumWindow) =
            if options.Spacing = SnapshotSpacing.InferredFromFiles then { w with Rule = sprintf "%s (%s)" w.Rule SnapshotSeries.InferredNote } else w
        let window =
            inferred <|
            match unit, options.Window with
            | TimeUnit.Step, Auto when epochs.Length >= 2 ->
                // Per-step snapshots cover the last K epochs of a run already in equilibrium (the
                // thermodynamic paper's protocol), and metrics are per epoch: `auto` is all of them.
                { Window.resolve run epochs None (Between(epochs[0], epochs[epochs.Length - 1])) with Rule = "auto (steps): every step snapshot" }
            | TimeUnit.Step, spec -> Window.resolve run epochs None spec
            | _, spec -> Window.resolve run epochs (if spec = Auto then readMetrics run else None) spec
        let paths = windowFiles run files window
        let snapshots = Array.map2 SeriesSnapshots.ofFile window.Times paths
        // The gradient noise is summarised per epoch: its decay belongs to the epoch analysis.
        { Name = run; TimeUnit = unit; Snapshots = snapshots; LearningRate = [||]
          GradientNoise = (if unit = TimeUnit.Step then [||] else readGradientNoise run); Source = "thermo run" },
        window

    /// The run directory's series over the window `options` asks for: a run Thermo trained (its
    /// per-epoch, or with `TimeUnit.Step` per-step, snapshot files, checked against run.json), or a
    /// run imported from a checkpoint series (the snapshots its run.json lists, unevenly spaced by design).
    let runSeries (unit: TimeUnit) (run: string) (options: AnalysisOptions) : AnalysisSeries * EquilibriumWindow =
        if ImportedRun.isImported run then ImportedRun.series run options.Window else trainedRunSeries unit run options

    /// The most values (weights × snapshots) of the MSD trajectories kept when no MSD layer is named:
    /// 64 MB of float32.
    let defaultMsdValues = 16L <<< 20

    /// What one analysis computes, fixed before any value is read (see `plan`).
    [<NoComparison; NoEquality>]
    type private Plan =
        { Series: AnalysisSeries
          Window: EquilibriumWindow
          Options: AnalysisOptions
          /// Whether the window is evenly spaced.
          Even: bool
          /// One snapshot interval Δt: Physics.Dt per time unit times the window's interval.
          Dt: float
          /// Δt of each velocity (every one `Dt` on an even window).
          Dts: float[]
          /// Σ_i Δt_i, the window's span in time.
          Span: float
          /// The window's velocities (snapshots − 1).
          Velocities: int
          /// "epoch" or "step", for messages.
          TimeName: string
          /// The tensors every snapshot must hold: the window's first snapshot's.
          Directory: SnapshotReader.TensorDirectory
          Layers: string[]
          /// Selected values in the flat order.
          Total: int
          /// The requested groups, the layer groups and the unit groups (see `buildGroups`).
          Groups: Group[]
          LayerGroups: Group[]
          UnitGroups: Group[]
          /// Whether each unit group's trajectories are kept for the MSD.
          IsMsdUnit: bool[]
          /// Trajectory rows of the MSD units, in unit order: unit u owns rows MsdRowStart[u] ..
          MsdRowStart: int[]
          /// The unit groups' ranges in the flat order, the layout the pass walks.
          Segments: Segment[]
          /// Each unit group's layer, as an index into `Layers`.
          UnitLayer: int[]
          /// Each unit group's weights.
          UnitSizes: int[]
          /// `Grouping.Weight`: per-weight sums are kept as well.
          PerWeight: bool
          /// The MSD fits' lags: the first, the last for α, the last for D (in velocities on an even
          /// window, in time units otherwise).
          FitLags: struct (int * int * int) }

    /// What the one pass leaves behind (see `accumulate`).
    [<NoComparison; NoEquality>]
    type private Accumulators =
        { /// Σ_k v_k(i)² of each unit u per velocity i, at u·n + i (the units partition the selected
          /// weights); one array, not one per unit, for a model of a hundred thousand units.
          UnitSums: float[]
          /// Each unit's Σ_k v̄_k², the drift over the window.
          UnitDrift: float[]
          /// Per weight: Σ_i v_k(i)² (even), or Σ_i Δt_i v_k(i)² (uneven); empty unless `PerWeight`.
          WeightSumSquares: float[]
          /// Per weight: v̄_k²; empty unless `PerWeight`.
          WeightDrift: float[]
          /// Each unit's Σ|w| at the window's last snapshot, and each layer's (in `Layers` order): sums
          /// of the 64 KB chunks' partial sums in flat order.
          UnitL1: float[]
          LayerL1: float[]
          /// The selected values of the window's last snapshot (the streaming pass's latest values; side
          /// by side, only with `PerWeight`, for the weights' L1).
          Latest: float32[]
          /// The MSD units' trajectories, one row per weight, one value per snapshot.
          Trajectories: float32[][] }

    /// Stage 1 of `analyzeSeries`: resolves what is computed (the time steps of the window, the tensor
    /// directory every snapshot must match, the groups, which units keep MSD trajectories and the
    /// flat layout the pass walks) before a single value is read. A stage of its own so that the
    /// settings a series cannot satisfy (layers, MSD layers, fit lags) fail before any snapshot is
    /// read, and so that the pass works on a fixed layout only.
    let private plan (series: AnalysisSeries) (window: EquilibriumWindow) (options: AnalysisOptions) : Plan =
        let run = series.Name
        let snapshots = series.Snapshots
        if snapshots.Length <> window.Times.Length || Array.exists2 (fun (s: SeriesSnapshot) t -> s.Time <> t) snapshots window.Times then
            invalidArg "series" "the series' snapshots must be the window's, in time order"
        let physics = options.Physics
        let even = window.IsEven
        // Δt is one snapshot interval (docs/THEORY.md): Physics.Dt per time unit times the interval.
        let dt = physics.Dt * float window.Interval
        let dts = if even then Array.create window.Velocities dt else window.Intervals |> Array.map (fun g -> physics.Dt * float g)
        let span = Array.sum dts
        let n = window.Velocities
        let timeName = TimeUnits.name series.TimeUnit
        let directory = snapshots[0].Directory ()
        let slots, layers = SnapshotStream.slotsOf run directory options
        let total = (SnapshotStream.fileOffsets directory)[directory.Length]
        let groups, layerGroups, unitGroups = buildGroups slots layers options.Grouping
        let msdLayers =
            match options.MsdLayers with
            | Some asked -> asked
            | None ->
                // The first analysed layer whose trajectories fit `defaultMsdValues`: a language model's
                // first layer is its embedding (38.6M weights for GPT-2 small: 1.5 GB of trajectories
                // over 10 checkpoints, and most of the analysis's time).
                let weightsOf (l: string) = slots |> Array.sumBy (fun s -> if s.Layer = l then int64 s.Units * int64 s.UnitSize else 0L)
                layers |> Array.tryFind (fun l -> weightsOf l * int64 snapshots.Length <= defaultMsdValues) |> Option.toArray
        for l in msdLayers do
            if not (Array.contains l layers) then
                Errors.setting AnalysisSetting.MsdLayers run "names '%s', which is not analysed (analysed: %s)" l (String.Join(", ", layers))
        // The fits take lags up to half (α) and a quarter (D) of the window unless told otherwise: in
        // velocities on an even window, in time units on an uneven one (lags over all pairs, binned).
        let fitLags =
            if even then
                match options.FitLags with
                | Some(a, b) ->
                    if a < 1 || b > n || b - a < 1 then Errors.setting AnalysisSetting.FitLags run "%d:%d must lie in 1..%d with at least two lags" a b n
                    struct (a, b, b)
                | None -> struct (1, max 2 (n / 2), max 2 (n / 4))
            else
                let windowSpan = window.To - window.From
                match options.FitLags with
                | Some(a, b) ->
                    if a < 1 || b > windowSpan || b - a < 1 then
                        Errors.setting AnalysisSetting.FitLags run "%d:%d must lie in 1..%d (%ss) with at least two lags" a b windowSpan timeName
                    struct (a, b, b)
                | None -> struct (1, max 2 (windowSpan / 2), max 2 (windowSpan / 4))
        let isMsdUnit (g: Group) = n >= 2 && Array.contains g.Key.Layer msdLayers
        let msdRowStart = unitGroups |> Array.scan (fun row g -> if isMsdUnit g then row + size g else row) 0
        let segments =
            let all = ResizeArray<Segment>(unitGroups.Length)
            unitGroups |> Array.iteri (fun u g ->
                let msd = isMsdUnit g
                let mutable before = 0
                for struct (start, length) in g.Ranges do
                    all.Add { Start = start; Length = length; Unit = u; MsdRow = (if msd then msdRowStart[u] + before else -1) }
                    before <- before + length)
            let segments = all.ToArray()
            // The starts are distinct (the ranges are disjoint), so any sort gives the one order.
            Array.sortInPlaceBy (fun s -> s.Start) segments
            segments
        // Each layer's index in `layers` (its first, as Array.IndexOf gives), without a scan per unit.
        let layerIndex = Collections.Generic.Dictionary<string, int>()
        layers |> Array.iteri (fun i l -> layerIndex.TryAdd(l, i) |> ignore)
        { Series = series; Window = window; Options = options
          Even = even; Dt = dt; Dts = dts; Span = span; Velocities = n; TimeName = timeName
          Directory = directory; Layers = layers; Total = total
          Groups = groups; LayerGroups = layerGroups; UnitGroups = unitGroups
          IsMsdUnit = unitGroups |> Array.map isMsdUnit; MsdRowStart = msdRowStart; Segments = segments
          UnitLayer = unitGroups |> Array.map (fun g -> layerIndex[g.Key.Layer])
          UnitSizes = unitGroups |> Array.map size
          PerWeight = options.Grouping = Grouping.Weight; FitLags = fitLags }

    /// Empty accumulators for the plan, with a float32 array of the latest values when `latest`.
    let private newAccumulators (p: Plan) (latest: bool) : Accumulators =
        { UnitSums = Array.zeroCreate<float> (p.UnitGroups.Length * p.Velocities)
          UnitDrift = Array.zeroCreate<float> p.UnitGroups.Length
          WeightSumSquares = (if p.PerWeight then Array.zeroCreate<float> p.Total else [||])
          WeightDrift = (if p.PerWeight then Array.zeroCreate<float> p.Total else [||])
          UnitL1 = Array.zeroCreate<float> p.UnitGroups.Length
          LayerL1 = Array.zeroCreate<float> p.Layers.Length
          Latest = (if latest then Array.zeroCreate<float32> p.Total else [||])
          Trajectories = Array.init p.MsdRowStart[p.UnitGroups.Length] (fun _ -> Array.zeroCreate<float32> (p.Velocities + 1)) }

    /// The scale of the drift's squared displacement: v̄_k = (w_k(b) − w_k(a)) / (t_b − t_a), over n Δt
    /// on an even window and the window's span otherwise.
    let private driftScale (p: Plan) = if p.Even then 1.0 / (float p.Velocities * p.Dt) ** 2.0 else 1.0 / p.Span ** 2.0

    /// The per-weight scale of a velocity's squared step: 1/Δt² on an even window, 1/Δt_i otherwise
    /// (the time integral the interval-weighted mean needs).
    let private weightScale (p: Plan) (velocity: int) = if p.Even then 1.0 / (p.Dt * p.Dt) else 1.0 / p.Dts[velocity]

    /// The index of the first segment that ends after flat position `position` (segments are sorted
    /// and disjoint).
    let private firstSegmentAfter (segments: Segment[]) (position: int) =
        let mutable lo = 0
        let mutable hi = segments.Length
        while lo < hi do
            let mid = (lo + hi) / 2
            if segments[mid].Start + segments[mid].Length <= position then lo <- mid + 1 else hi <- mid
        lo

    /// Stage 2, one snapshot after another: the window's snapshots streamed in order, then its first
    /// again for the drift, each value added into running sums as it is read against the latest
    /// snapshot's values. Used for sources that can only be streamed (Thermo's Parquet and Arrow
    /// files).
    let private accumulateStreaming (p: Plan) (progress: int -> int -> unit) : Accumulators =
        let a = newAccumulators p true
        let snapshots = p.Series.Snapshots
        let dts, timeName = p.Dts, p.TimeName
        let directory, segments, perWeight = p.Directory, p.Segments, p.PerWeight
        let unitSums, unitDrift, weightSumSquares, weightDrift, latest, trajectories =
            a.UnitSums, a.UnitDrift, a.WeightSumSquares, a.WeightDrift, a.Latest, a.Trajectories
        // Snapshots 0..m are the window; m+1 is the window's first snapshot again, for the drift.
        let m = snapshots.Length - 1
        let driftPass = m + 1
        let driftScale = driftScale p
        let mutable time = 0
        let mutable cursor = 0
        let onSnapshot (index: int) (snapshotTime: int) (snapshotDirectory: SnapshotReader.TensorDirectory) =
            SnapshotStream.requireSameTensors directory snapshots[0].Source "the window's first snapshot" snapshots[index % (m + 1)].Source snapshotDirectory
            time <- snapshotTime
            cursor <- 0
            progress index (m + 2)
        let consume (index: int) (offset: int) (chunk: float32[]) (count: int) =
            if index <> driftPass then SnapshotStream.checkFinite snapshots[index].Source timeName time directory offset (ReadOnlySpan<float32>(chunk, 0, count))
            let stop = offset + count
            while cursor < segments.Length && segments[cursor].Start + segments[cursor].Length <= offset do
                cursor <- cursor + 1
            let mutable s = cursor
            while s < segments.Length && segments[s].Start < stop do
                let segment = segments[s]
                let from = max segment.Start offset
                let until = min (segment.Start + segment.Length) stop
                let current = ReadOnlySpan<float32>(chunk, from - offset, until - from)
                if index = 0 then
                    current.CopyTo(Span<float32>(latest, from, until - from))
                elif index = driftPass then
                    let sum =
                        if perWeight then VelocityKernels.squaredDifferencesInto (current, ReadOnlySpan<float32>(latest, from, until - from), Span<float>(weightDrift, from, until - from), driftScale)
                        else VelocityKernels.squaredDifferences (current, ReadOnlySpan<float32>(latest, from, until - from))
                    unitDrift[segment.Unit] <- unitDrift[segment.Unit] + sum * driftScale
                else
                    let interval = dts[index - 1]
                    let target = Span<float32>(latest, from, until - from)
                    let sum =
                        if perWeight then VelocityKernels.stepSquaresInto (current, target, Span<float>(weightSumSquares, from, until - from), weightScale p (index - 1))
                        else VelocityKernels.stepSquares (current, target)
                    let at = segment.Unit * p.Velocities + index - 1
                    unitSums[at] <- unitSums[at] + sum / (interval * interval)
                if index = m then
                    let l1 = VelocityKernels.absoluteSum current
                    a.UnitL1[segment.Unit] <- a.UnitL1[segment.Unit] + l1
                    a.LayerL1[p.UnitLayer[segment.Unit]] <- a.LayerL1[p.UnitLayer[segment.Unit]] + l1
                if segment.MsdRow >= 0 && index <> driftPass then
                    for k in from .. until - 1 do
                        trajectories[segment.MsdRow + k - segment.Start].[index] <- chunk[k - offset]
                s <- s + 1
        SnapshotStream.streamSnapshots (Array.append snapshots [| snapshots[0] |]) onSnapshot consume
        a

    /// What one worker made of one chunk in the side-by-side pass, merged in chunk order: per piece
    /// (a unit's range within the chunk, in flat order) its unit, the velocities' squared steps
    /// (already divided by Δt_i²) and the drift's; or the failure it met.
    [<NoComparison; NoEquality>]
    type private ChunkSums =
        { Units: int[]
          /// Piece j's velocity i at j·n + i.
          Steps: float[]
          Drift: float[]
          /// Piece j's Σ|w| at the last snapshot.
          L1: float[]
          Failure: Runtime.ExceptionServices.ExceptionDispatchInfo }

    /// A block's sums say a value is NaN or ±∞ (`failAtFirstNonFinite` then names it).
    type private NonFiniteValues() =
        inherit Exception("a value of the block is NaN or infinite")

    /// Chunks read from each source at once: one positioned read of 256 KB costs about half as much as
    /// four of 64 KB, whose system calls dominate when the files are in the page cache.
    let private chunksPerRead = 4

    /// Reads a worker takes per batch: enough to amortise the batch's barrier and merge.
    let private readsPerBatch = 32

    /// The most snapshots read side by side: each chunk's partial sums hold a float64 per piece and
    /// velocity until they are merged (`readsPerBatch` × `chunksPerRead` chunks per core at a time).
    let private sideBySideLimit = 128

    /// The most files the side-by-side pass holds open: every file of every snapshot of the window
    /// stays open for the whole pass (a checkpoint of ten shards holds ten), and a process may open
    /// about a thousand in all.
    let private openFileBudget = 256

    /// Opens the snapshots' values one after another while the files they hold stay within
    /// `openFileBudget`; beyond it, closes those opened and returns None.
    let private openWithinBudget (opens: (unit -> SnapshotValues)[]) : SnapshotValues[] option =
        let opened = ResizeArray<SnapshotValues>()
        try
            let mutable files = 0
            let mutable i = 0
            while i < opens.Length && files <= openFileBudget do
                let source = opens[i] ()
                opened.Add source
                files <- files + source.Files
                i <- i + 1
            if files <= openFileBudget then Some(opened.ToArray())
            else
                for s in opened do s.Dispose()
                None
        with _ ->
            for s in opened do s.Dispose()
            reraise ()

    /// Fails naming the first NaN or ±∞ of the window's snapshots in the streaming pass's order
    /// (snapshot after snapshot in time order, each in flat order) with its check, so that both passes
    /// give one message; a second read of the files in one block's memory, made only by an analysis
    /// about to fail.
    let private failAtFirstNonFinite (p: Plan) (sources: SnapshotValues[]) =
        let snapshots = p.Series.Snapshots
        let block = SnapshotStream.chunkLength * chunksPerRead
        let buffer = Array.zeroCreate<float32> (min block p.Total)
        for i in 0 .. snapshots.Length - 1 do
            let mutable origin = 0
            while origin < p.Total do
                let count = min block (p.Total - origin)
                sources[i].Read(origin, buffer, 0, count)
                SnapshotStream.checkFinite snapshots[i].Source p.TimeName snapshots[i].Time p.Directory origin (ReadOnlySpan<float32>(buffer, 0, count))
                origin <- origin + count

    /// Stage 2, the window's snapshots side by side, from their opened random access (`Values`; closed
    /// here when done), on every core. A worker takes a block of flat positions (four 64 KB chunks)
    /// and reads it from one snapshot after another into one of two buffers, beside the previous
    /// snapshot's block, summing each piece's step while both are in cache (a block of every
    /// snapshot at once does not stay in a core's cache, and summing it from the next level took
    /// about a fifth longer); the first snapshot's block stays for the drift. Each source byte is
    /// read once (unless a value is not finite and the analysis fails) and no array of the latest
    /// values is kept (the streaming pass reads the first snapshot twice and keeps and rewrites a
    /// float32 copy of every selected value). Every sum adds the same terms in the same order as the
    /// streaming pass's, and the chunks' partial sums are merged in flat order, so the results are
    /// those of `accumulateStreaming` to the last bit.
    let private accumulateSideBySide (p: Plan) (sources: SnapshotValues[]) (progress: int -> int -> unit) : Accumulators =
        try
            let snapshots = p.Series.Snapshots
            let m = snapshots.Length - 1
            let n = p.Velocities
            let a = newAccumulators p p.PerWeight
            let segments, perWeight, dts = p.Segments, p.PerWeight, p.Dts
            let driftScale = driftScale p
            let chunk = SnapshotStream.chunkLength
            let chunks = (p.Total + chunk - 1) / chunk
            let block = chunk * chunksPerRead
            let blocks = (p.Total + block - 1) / block
            // One block's chunks' sums into `results` from `at`, with `buffers` (three arrays of a block).
            let sumsOfBlock (buffers: float32[][]) (b: int) (results: ChunkSums[]) (at: int) =
                let origin = b * block
                let count = min block (p.Total - origin)
                let firstChunk = origin / chunk
                let blockChunks = (count + chunk - 1) / chunk
                // Chunk k of the block: its flat positions.
                let chunkStart (k: int) = (firstChunk + k) * chunk
                let chunkStop (k: int) = chunkStart k + min chunk (p.Total - chunkStart k)
                // Piece j of chunk k: its segment's flat positions clipped to the chunk.
                let clip (k: int) (segment: Segment) =
                    let from = max segment.Start (chunkStart k)
                    struct (from, min (segment.Start + segment.Length) (chunkStop k) - from)
                try
                    let firstSegments = Array.init blockChunks (fun k -> firstSegmentAfter segments (chunkStart k))
                    let sums =
                        Array.init blockChunks (fun k ->
                            let first = firstSegments[k]
                            let mutable last = first
                            while last < segments.Length && segments[last].Start < chunkStop k do last <- last + 1
                            let pieces = last - first
                            { Units = Array.init pieces (fun j -> segments[first + j].Unit)
                              Steps = Array.zeroCreate (pieces * n); Drift = Array.zeroCreate pieces; L1 = Array.zeroCreate pieces; Failure = null })
                    // Values between the pieces (outside the analysed units) are checked one by one; a
                    // NaN or ±∞ inside a piece makes one of its step sums non-finite (finite float32
                    // values cannot overflow a float64 sum of squares), which is checked at the end.
                    let mutable finite = true
                    // Snapshot i's block, in `current`: each piece's trajectory values and its step
                    // from `previous` (velocity i − 1).
                    let visit (i: int) (current: float32[]) (previous: float32[]) =
                        for k in 0 .. blockChunks - 1 do
                            let stop = chunkStop k
                            let r = sums[k]
                            let mutable covered = chunkStart k
                            for j in 0 .. r.Units.Length - 1 do
                                let segment = segments[firstSegments[k] + j]
                                let struct (from, length) = clip k segment
                                if from > covered then
                                    finite <- finite && SnapshotStream.firstNonFinite (ReadOnlySpan<float32>(current, covered - origin, from - covered)) < 0
                                covered <- from + length
                                if i > 0 then
                                    let values = ReadOnlySpan<float32>(current, from - origin, length)
                                    let before = ReadOnlySpan<float32>(previous, from - origin, length)
                                    let sum =
                                        if perWeight then VelocityKernels.stepSquaresFromInto (values, before, Span<float>(a.WeightSumSquares, from, length), weightScale p (i - 1))
                                        else VelocityKernels.stepSquaresFrom (values, before)
                                    r.Steps[j * n + i - 1] <- sum
                                if segment.MsdRow >= 0 then
                                    for q in 0 .. length - 1 do
                                        a.Trajectories[segment.MsdRow + from - segment.Start + q].[i] <- current[from - origin + q]
                            if stop > covered then
                                finite <- finite && SnapshotStream.firstNonFinite (ReadOnlySpan<float32>(current, covered - origin, stop - covered)) < 0
                    let first = buffers[0]
                    sources[0].Read(origin, first, 0, count)
                    visit 0 first null
                    let mutable previous = first
                    for i in 1 .. m do
                        let current = buffers[1 + (i - 1) % 2]
                        sources[i].Read(origin, current, 0, count)
                        visit i current previous
                        previous <- current
                    // The drift's squared displacement (first against last) and the last values' L1.
                    for k in 0 .. blockChunks - 1 do
                        let r = sums[k]
                        for j in 0 .. r.Units.Length - 1 do
                            let struct (from, length) = clip k segments[firstSegments[k] + j]
                            let firstValues = ReadOnlySpan<float32>(first, from - origin, length)
                            let lastValues = ReadOnlySpan<float32>(previous, from - origin, length)
                            let drift =
                                if perWeight then VelocityKernels.squaredDifferencesInto (firstValues, lastValues, Span<float>(a.WeightDrift, from, length), driftScale)
                                else VelocityKernels.squaredDifferences (firstValues, lastValues)
                            r.Drift[j] <- drift * driftScale
                            r.L1[j] <- VelocityKernels.absoluteSum lastValues
                            if perWeight then lastValues.CopyTo(Span<float32>(a.Latest, from, length))
                            for i in 0 .. n - 1 do
                                let step = r.Steps[j * n + i]
                                finite <- finite && Double.IsFinite step
                                r.Steps[j * n + i] <- step / (dts[i] * dts[i])
                        results[at + k] <- r
                    if not finite then raise (NonFiniteValues())
                with e ->
                    // Reported at the block's first chunk: a block fails as a whole, and the chunks
                    // merge in order.
                    for k in 0 .. blockChunks - 1 do results[at + k] <- Unchecked.defaultof<_>
                    results[at] <- { Units = [||]; Steps = [||]; Drift = [||]; L1 = [||]; Failure = Runtime.ExceptionServices.ExceptionDispatchInfo.Capture e }
            let workers = max 1 Environment.ProcessorCount
            let batch = workers * readsPerBatch
            let results = Array.zeroCreate<ChunkSums> (batch * chunksPerRead)
            // Three blocks per worker at work (the first snapshot's and two in turn), reused.
            let spare = Collections.Concurrent.ConcurrentBag<float32[][]>()
            let mutable start = 0
            while start < blocks do
                let size = min batch (blocks - start)
                Threading.Tasks.Parallel.For(0, size, Threading.Tasks.ParallelOptions(MaxDegreeOfParallelism = workers), fun k ->
                    let buffers =
                        match spare.TryTake() with
                        | true, b -> b
                        | _ -> Array.init 3 (fun _ -> Array.zeroCreate<float32> block)
                    sumsOfBlock buffers (start + k) results (k * chunksPerRead)
                    spare.Add buffers) |> ignore
                // In chunk order: the first failure in flat order, then the sums as the streaming pass adds them.
                let firstChunk = start * chunksPerRead
                for k in 0 .. min (size * chunksPerRead) (chunks - firstChunk) - 1 do
                    let r = results[k]
                    if not (isNull r.Failure) then
                        // A value somewhere is NaN or ±∞: named as the streaming pass names it.
                        if r.Failure.SourceException :? NonFiniteValues then failAtFirstNonFinite p sources
                        r.Failure.Throw()
                    for j in 0 .. r.Units.Length - 1 do
                        let u = r.Units[j]
                        let sums = a.UnitSums
                        for i in 0 .. n - 1 do sums[u * n + i] <- sums[u * n + i] + r.Steps[j * n + i]
                        a.UnitDrift[u] <- a.UnitDrift[u] + r.Drift[j]
                        a.UnitL1[u] <- a.UnitL1[u] + r.L1[j]
                        a.LayerL1[p.UnitLayer[u]] <- a.LayerL1[p.UnitLayer[u]] + r.L1[j]
                    results[k] <- Unchecked.defaultof<_>
                start <- start + size
                progress (min (m + 1) (int (float start / float blocks * float (m + 2)))) (m + 2)
            a
        finally
            for s in sources do s.Dispose()

    /// Stage 2 of `analyzeSeries`: the one pass over the snapshots, adding each value into running
    /// sums as it is read (and checking it is finite and that every snapshot holds the same tensors).
    /// A stage of its own because it is the only part that reads files and the only one whose cost
    /// grows with snapshots × parameters; what it keeps is O(parameters) plus the MSD trajectories.
    /// Snapshots that can be read at any position go side by side (`accumulateSideBySide`), up to
    /// `sideBySideLimit` of them holding up to `openFileBudget` files; others are streamed one after
    /// another, with the same results.
    let private accumulate (p: Plan) (progress: int -> int -> unit) : Accumulators =
        let snapshots = p.Series.Snapshots
        let opens = snapshots |> Array.choose (fun s -> s.Values)
        let sources =
            if opens.Length = snapshots.Length && snapshots.Length <= sideBySideLimit && p.Total > 0 then
                for i in 1 .. snapshots.Length - 1 do
                    SnapshotStream.requireSameTensors p.Directory snapshots[0].Source "the window's first snapshot" snapshots[i].Source (snapshots[i].Directory ())
                openWithinBudget opens
            else None
        match sources with
        | Some sources -> accumulateSideBySide p sources progress
        | None -> accumulateStreaming p progress

    /// Stage 3 of `analyzeSeries`: turns the sums into the result records — temperatures, L1 norms,
    /// ranks, the instantaneous and diffusive series, the Spearman correlations, the MSD curves and
    /// their fits, the gradient noise's decay. A stage of its own because it reads no file: it is
    /// arithmetic on the accumulators alone, where the per-result costs (layers × units) show.
    let private derive (p: Plan) (a: Accumulators) : AnalysisResult =
        let series, window, options = p.Series, p.Window, p.Options
        let run = series.Name
        let physics = options.Physics
        let even, dt, dts, span, n, timeName = p.Even, p.Dt, p.Dts, p.Span, p.Velocities, p.TimeName
        let layers, groups, layerGroups, unitGroups = p.Layers, p.Groups, p.LayerGroups, p.UnitGroups
        let unitSums, unitDrift, weightSumSquares, weightDrift = a.UnitSums, a.UnitDrift, a.WeightSumSquares, a.WeightDrift
        let latest, trajectories, msdRowStart = a.Latest, a.Trajectories, p.MsdRowStart
        let temperature = Kinematics.temperature physics
        let unitSizes, unitLayer = p.UnitSizes, p.UnitLayer
        // Σ_i v(i)² of the sums at `at` .. `at + n − 1` over the window, and the count of velocities it
        // averages over (per weight): n on an even window; on an uneven one Σ_i Δt_i v(i)² and Σ_i Δt_i,
        // the interval-weighted mean. Loops, not closures: they run once per unit, 10⁵ times for a
        // language model.
        let windowSum (sums: float[]) (at: int) =
            let mutable sum = 0.0
            if even then
                for i in 0 .. n - 1 do sum <- sum + sums[at + i]
                struct (sum, float n)
            else
                for i in 0 .. n - 1 do sum <- sum + sums[at + i] * dts[i]
                struct (sum, span)
        // D over the window: Σ_i (Δw)² / (2 Σ_i Δt_i), with (Δw)² = v² Δt_i².
        let windowDiffusive (sums: float[]) (at: int) (count: int) =
            let mutable sum = 0.0
            for i in 0 .. n - 1 do sum <- sum + sums[at + i] * dts[i] * dts[i]
            sum / (2.0 * span * float count)
        let unitL1 = a.UnitL1
        let keys = groups |> Array.map (fun g -> g.Key)
        // The MSD curves and fits of the MSD groups, from their trajectories.
        let msdOfUnits () =
            let msdUnits = [| for u in 0 .. unitGroups.Length - 1 do if p.IsMsdUnit[u] then yield u, unitGroups[u] |]
            let rowsOf u g = Array.init (size g) (fun r -> trajectories[msdRowStart[u] + r] |> Array.map float)
            let struct (fitFrom, alphaTo, diffusionTo) = p.FitLags
            if even then
                msdUnits |> Array.map (fun (u, g) ->
                    let curves = GroupDiffusion.compute (rowsOf u g)
                    { Key = g.Key; Curves = curves
                      Alpha = fitOrNaN (fun () -> Fits.anomalousExponent curves.Lags curves.Msd fitFrom (min n alphaTo))
                      Diffusion = fitOrNaN (fun () -> Fits.diffusionConstant dt curves.Lags curves.DriftCorrectedMsd fitFrom (min n diffusionTo)) })
            else
                // Lags in time units over all pairs of snapshots, binned (docs/THEORY.md).
                msdUnits |> Array.map (fun (u, g) ->
                    let curves = GroupDiffusion.computeUneven window.Times (rowsOf u g)
                    { Key = g.Key; Curves = curves
                      Alpha = fitOrNaN (fun () -> Fits.anomalousExponent curves.Lags curves.Msd fitFrom alphaTo)
                      Diffusion = fitOrNaN (fun () -> Fits.diffusionConstant physics.Dt curves.Lags curves.DriftCorrectedMsd fitFrom diffusionTo) })
        // The parts of each `runTogether` below depend only on what comes before it, not on each
        // other; each takes milliseconds to tens of milliseconds for the 10⁵ units of a language
        // model (and the MSD up to seconds), so they run at once.
        let mutable unitWindowSums, unitTemperatures, unitDiffusive = [||], [||], [||]
        let mutable unitsByLayer, members = [||], [||]
        let mutable diffusion = [||]
        runTogether [|
            fun () ->
                // Each unit's window sum, once: its temperature and its layer's (even windows) both add it.
                unitWindowSums <- Array.init unitGroups.Length (fun u -> windowSum unitSums (u * n))
                unitTemperatures <-
                    Array.init unitGroups.Length (fun u ->
                        let count = unitSizes[u]
                        let struct (sum, velocities) = unitWindowSums[u]
                        Kinematics.groupTemperatureOf (temperature sum (velocities * float count)) (temperature unitDrift[u] (float count)) count)
            fun () -> unitDiffusive <- Array.init unitGroups.Length (fun u -> windowDiffusive unitSums (u * n) unitSizes[u])
            fun () ->
                // Each layer's units, in unit order, found once: a scan of every unit per call made
                // the per-layer results cost layers × units (seconds and gigabytes of garbage for a
                // 124M model).
                let lists = Array.init layers.Length (fun _ -> ResizeArray<int>())
                unitLayer |> Array.iteri (fun u l -> lists[l].Add u)
                unitsByLayer <- lists |> Array.map (fun list -> list.ToArray())
                // The groups of each layer, for the rankings: with unit groups, the units by layer.
                members <- if options.Grouping = Grouping.Unit then unitsByLayer else layerMembers keys
            fun () -> diffusion <- msdOfUnits () |]
        // A layer's sums are its units' sums, added in unit order: the same arithmetic, weighted by the
        // units' sizes. Per layer (in `layers` order) its sum per velocity, its units' window sums
        // (even windows) and drift sums, and its weights, in one pass over the units.
        let layerSums = Array.init layers.Length (fun _ -> Array.zeroCreate<float> n)
        let layerWindowSums = Array.zeroCreate<float> layers.Length
        let layerDrift = Array.zeroCreate<float> layers.Length
        let layerWeights = Array.zeroCreate<int> layers.Length
        for u in 0 .. unitGroups.Length - 1 do
            let l = unitLayer[u]
            let sums = layerSums[l]
            for i in 0 .. n - 1 do sums[i] <- sums[i] + unitSums[u * n + i]
            if even then
                let struct (sum, _) = unitWindowSums[u]
                layerWindowSums[l] <- layerWindowSums[l] + sum
            layerDrift[l] <- layerDrift[l] + unitDrift[u]
            layerWeights[l] <- layerWeights[l] + unitSizes[u]
        let layerTemperature (l: int) =
            let count = layerWeights[l]
            let struct (sum, velocities) = if even then struct (layerWindowSums[l], float n) else windowSum layerSums[l] 0
            Kinematics.groupTemperatureOf (temperature sum (velocities * float count)) (temperature layerDrift[l] (float count)) count
        let layerResults =
            layerGroups |> Array.mapi (fun l g ->
                { Key = g.Key; Temperature = layerTemperature l; L1Norm = a.LayerL1[l]; Rank = 1; OscillationRank = 1
                  DiffusiveRate = windowDiffusive layerSums[l] 0 layerWeights[l] })
        let temperatures, groupL1, groupDiffusive =
            match options.Grouping with
            | Grouping.Unit -> unitTemperatures, unitL1, unitDiffusive
            | Grouping.Layer -> layerResults |> Array.map (fun r -> r.Temperature), layerResults |> Array.map (fun r -> r.L1Norm), layerResults |> Array.map (fun r -> r.DiffusiveRate)
            | _ ->
                groups |> Array.map (fun g ->
                    let struct (k, _) = g.Ranges[0]
                    // weightDrift already holds v̄_k²: one weight, no mean to take (÷ 1 is exact).
                    Kinematics.groupTemperatureOf (temperature weightSumSquares[k] (if even then float n else span)) (temperature weightDrift[k] 1.0) 1),
                // One weight's L1 is |w| at the window's last snapshot.
                groups |> Array.map (fun g -> let struct (k, _) = g.Ranges[0] in abs (float latest[k])),
                // Even: Σ (Δw)² = Σ v² dt², so D = Σ v² dt / (2 n). Uneven: the per-weight sum holds
                // Σ Δt_i v², which does not give Σ (Δw)² back.
                groups |> Array.map (fun g -> let struct (k, _) = g.Ranges[0] in if even then weightSumSquares[k] * dt / (2.0 * float n) else nan)
        // The series of every layer, then (unit grouping) of every unit, flat.
        let seriesUnits = if options.Grouping = Grouping.Unit then unitGroups.Length else 0
        let seriesKeys = Array.append (layerGroups |> Array.map (fun g -> g.Key)) (Array.init seriesUnits (fun u -> unitGroups[u].Key))
        let instantaneous = Array.zeroCreate<float> (seriesKeys.Length * n)
        let diffusive = Array.zeroCreate<float> (seriesKeys.Length * n)
        // Series s from the sums at `at` of a group of `count` weights: T_G(i) = c·Σ v(i)² / |G| and
        // D_G(i) = Σ (Δw)² / (2 Δt_i |G|) = Σ v(i)² Δt_i / (2 |G|).
        let fillSeries (s: int) (sums: float[]) (at: int) (count: int) =
            for i in 0 .. n - 1 do
                instantaneous[s * n + i] <- temperature sums[at + i] (float count)
                diffusive[s * n + i] <- sums[at + i] * dts[i] / (2.0 * float count)
        let mutable ranks, oscillationRanks = [||], [||]
        let mutable spearman = [||]
        runTogether [|
            fun () -> ranks <- ranksWithinLayer members (temperatures |> Array.map (fun t -> t.Temperature))
            fun () -> oscillationRanks <- ranksWithinLayer members (temperatures |> Array.map (fun t -> t.Oscillation))
            fun () ->
                spearman <-
                    layers |> Array.mapi (fun l layer ->
                        let units = unitsByLayer[l]
                        { LayerSpearman.Layer = layer
                          Rho = Ranking.spearman (units |> Array.map (fun u -> unitTemperatures[u].Temperature)) (units |> Array.map (fun u -> unitL1[u]))
                          Units = units.Length })
            fun () ->
                for l in 0 .. layerGroups.Length - 1 do fillSeries l layerSums[l] 0 layerWeights[l]
                for u in 0 .. seriesUnits - 1 do fillSeries (layerGroups.Length + u) unitSums (u * n) unitSizes[u] |]
        let results =
            Array.init groups.Length (fun i ->
                { Key = keys[i]; Temperature = temperatures[i]; L1Norm = groupL1[i]; Rank = ranks[i]; OscillationRank = oscillationRanks[i]
                  DiffusiveRate = groupDiffusive[i] })
        let learningRates =
            let known = dict series.LearningRate
            window.Times[1..] |> Array.map (fun t -> match known.TryGetValue t with | true, eta -> eta | _ -> nan)
        let noise = series.GradientNoise
        { Run = run; TimeUnit = series.TimeUnit; Window = window; Physics = physics; Grouping = options.Grouping; Groups = results; Layers = layerResults
          Instantaneous = GroupSeries(seriesKeys, n, instantaneous); DiffusiveRates = GroupSeries(seriesKeys, n, diffusive); LearningRates = learningRates; Source = series.Source
          Diffusion = diffusion; TemperatureL1Spearman = spearman
          NoiseDecay = GradientNoise.layerDecay noise (max 1 window.From) window.To
          CommonNoiseDecay = GradientNoise.commonDecay noise (max 1 window.From) window.To }

    /// Analyses a series over its window, calling `progress done total` as each snapshot is reached
    /// (the window's snapshots and the first one read again for the drift), for a progress display.
    /// The window may be unevenly spaced (a checkpoint series): each velocity then has its own Δt, and
    /// window averages weight each interval by its length (docs/THEORY.md); an evenly spaced window
    /// is computed with the plain means, the formulas of before unevenly spaced series existed.
    ///
    /// Memory: the per-unit sums of v² per interval, the MSD groups' trajectories as stored (float32,
    /// weights × snapshots); streamed (Thermo's files), one float32 copy of the selected values (the
    /// latest snapshot, updated in place) and a few 64 KB chunks, the first snapshot read again at the
    /// end for the drift; side by side (checkpoints), three 256 KB blocks of values per core and no
    /// copy of the values. With `Grouping.Weight`, also a float64 sum of v² and the drift per weight
    /// and the last snapshot's values.
    ///
    /// In three stages: `plan` (what is computed), `accumulate` (the one pass over the snapshots),
    /// `derive` (the result records).
    let analyzeSeries (series: AnalysisSeries) (window: EquilibriumWindow) (options: AnalysisOptions) (progress: int -> int -> unit) : AnalysisResult =
        let p = plan series window options
        derive p (accumulate p progress)

    /// Analyses the run's series of `unit` — per-epoch snapshots, or per-step ones (`analyzeSteps`) —
    /// with progress as `analyzeSeries`.
    let analyzeSeriesWithProgress (unit: TimeUnit) (run: string) (options: AnalysisOptions) (progress: int -> int -> unit) : AnalysisResult =
        let series, window = runSeries unit run options
        analyzeSeries series window options progress

    /// Analyses one run directory: resolves the window, streams its snapshots once, and returns every
    /// table of `analyze`. Raises `ArtifactException` (one message naming run, file, layer or epoch)
    /// for any file it cannot use, and `SettingException` for an option the run cannot satisfy (window,
    /// layers, MSD layers, fit lags).
    let analyze (run: string) (options: AnalysisOptions) : AnalysisResult = analyzeSeriesWithProgress TimeUnit.Epoch run options (fun _ _ -> ())

    /// As `analyzeSeriesWithProgress`, over the per-epoch snapshots.
    let analyzeWithProgress (run: string) (options: AnalysisOptions) (progress: int -> int -> unit) : AnalysisResult =
        analyzeSeriesWithProgress TimeUnit.Epoch run options progress

    /// Analyses the per-step snapshots (snapshots/steps/) with Δt = one optimiser step: windows are in
    /// global steps (`last:N` the last N steps; `auto` every step snapshot); the tables say
    /// time_unit = step and go to RUN/analysis-steps/.
    let analyzeSteps (run: string) (options: AnalysisOptions) : AnalysisResult = analyzeSeriesWithProgress TimeUnit.Step run options (fun _ _ -> ())

namespace Thermo.Analysis.Checkpoints

open System
open System.Buffers
open System.Buffers.Binary
open System.Collections.Generic
open System.IO
open System.Numerics
open System.Runtime.InteropServices
open Thermo.Analysis
open Thermo.Analysis.Engine

/// The caller's chunks being filled with float32 values: `nextChunk` gives an array to fill, and
/// `filled chunk count` hands it back full (or, at the end, with `count` values). A chunk outlives
/// a tensor, so one chunk may hold the end of one tensor and the start of the next.
[<Sealed>]
type ChunkSink(nextChunk: unit -> float32[], filled: float32[] -> int -> unit) =
    let mutable chunk: float32[] = null
    let mutable count = 0

    /// The unwritten rest of the current chunk; a new chunk when none is open.
    member _.Free: Span<float32> =
        if isNull chunk then
            let next = nextChunk ()
            if isNull next || next.Length = 0 then invalidOp "nextChunk gave an empty chunk"
            chunk <- next
            count <- 0
        Span<float32>(chunk, count, chunk.Length - count)

    /// Marks the first `n` values of `Free` written; a full chunk is handed back at once.
    member _.Advance(n: int) =
        count <- count + n
        if count = chunk.Length then
            let full = chunk
            chunk <- null
            filled full count

    /// Hands back the partly filled chunk, if any: the end of the stream.
    member _.Flush() =
        if not (isNull chunk) && count > 0 then
            let last = chunk
            chunk <- null
            filled last count

/// Little-endian floating elements to float32, the precision of Thermo's snapshot schema: the one
/// place where a checkpoint's bytes become values.
module ElementConversion =
    /// Bytes per element of `dtype`.
    let elementSize (dtype: StoredDType) =
        match dtype with
        | StoredDType.Float32 -> 4
        | StoredDType.Float16 | StoredDType.BFloat16 -> 2
        | StoredDType.Float64 -> 8
        | other -> invalidArg "dtype" (sprintf "unknown stored dtype %A" other)

    /// The dtype's name as PyTorch spells it.
    let dtypeName (dtype: StoredDType) =
        match dtype with
        | StoredDType.Float32 -> "float32"
        | StoredDType.Float16 -> "float16"
        | StoredDType.BFloat16 -> "bfloat16"
        | StoredDType.Float64 -> "float64"
        | other -> string other

    let private bfloat16 (source: ReadOnlySpan<byte>) (destination: Span<float32>) =
        // A bfloat16 is the upper half of a float32: widen each 16-bit pattern and shift it up.
        let halves = MemoryMarshal.Cast<byte, uint16> source
        let words = MemoryMarshal.Cast<float32, uint32> destination
        let mutable i = 0
        if BitConverter.IsLittleEndian && Vector.IsHardwareAccelerated && words.Length >= halves.Length then
            // Loads and stores without a slice and a bounds check each (the loop is checked once,
            // above): this conversion took more than half as long as the velocity sums of its values.
            let width = Vector<uint16>.Count
            let from = &MemoryMarshal.GetReference halves
            let into = &MemoryMarshal.GetReference words
            let mutable low = Vector<uint32>.Zero
            let mutable high = Vector<uint32>.Zero
            while i + width <= halves.Length do
                Vector.Widen(Vector.LoadUnsafe(&from, unativeint i), &low, &high)
                Vector.StoreUnsafe(Vector.ShiftLeft(low, 16), &into, unativeint i)
                Vector.StoreUnsafe(Vector.ShiftLeft(high, 16), &into, unativeint (i + width / 2))
                i <- i + width
        while i < halves.Length do
            words[i] <- uint32 (BinaryPrimitives.ReadUInt16LittleEndian(source.Slice(2 * i))) <<< 16
            i <- i + 1

    let private float64 (source: ReadOnlySpan<byte>) (destination: Span<float32>) =
        let doubles = MemoryMarshal.Cast<byte, float> source
        let mutable i = 0
        if BitConverter.IsLittleEndian && Vector.IsHardwareAccelerated then
            let width = Vector<float>.Count
            while i + 2 * width <= doubles.Length do
                Vector.Narrow(Vector<float>(doubles.Slice i), Vector<float>(doubles.Slice(i + width))).CopyTo(destination.Slice i)
                i <- i + 2 * width
        while i < doubles.Length do
            destination[i] <- float32 (BinaryPrimitives.ReadDoubleLittleEndian(source.Slice(8 * i)))
            i <- i + 1

    /// Converts the little-endian elements of `dtype` in `source` (a whole number of them) to
    /// float32 in the first `source.Length / elementSize dtype` values of `destination`: a copy
    /// for float32, IEEE rounding to nearest for float64.
    let convert (dtype: StoredDType) (source: ReadOnlySpan<byte>) (destination: Span<float32>) =
        let n = source.Length / elementSize dtype
        let destination = destination.Slice(0, n)
        match dtype with
        | StoredDType.Float32 when BitConverter.IsLittleEndian -> MemoryMarshal.Cast<byte, float32>(source).CopyTo destination
        | StoredDType.Float32 ->
            for i in 0 .. n - 1 do
                destination[i] <- BinaryPrimitives.ReadSingleLittleEndian(source.Slice(4 * i))
        | StoredDType.Float16 ->
            for i in 0 .. n - 1 do
                destination[i] <- float32 (BinaryPrimitives.ReadHalfLittleEndian(source.Slice(2 * i)))
        | StoredDType.BFloat16 -> bfloat16 source destination
        | StoredDType.Float64 -> float64 source destination
        | other -> invalidArg "dtype" (sprintf "unknown stored dtype %A" other)

    /// The float32 value of the one element of `dtype` at the start of `source`.
    let convertOne (dtype: StoredDType) (source: ReadOnlySpan<byte>) =
        match dtype with
        | StoredDType.Float32 -> BinaryPrimitives.ReadSingleLittleEndian source
        | StoredDType.Float16 -> float32 (BinaryPrimitives.ReadHalfLittleEndian source)
        | StoredDType.BFloat16 -> BitConverter.UInt32BitsToSingle(uint32 (BinaryPrimitives.ReadUInt16LittleEndian source) <<< 16)
        | StoredDType.Float64 -> float32 (BinaryPrimitives.ReadDoubleLittleEndian source)
        | other -> invalidArg "dtype" (sprintf "unknown stored dtype %A" other)

/// One tensor's elements from a seekable stream into caller chunks, in row-major order of the
/// tensor's analysed shape: contiguous tensors stream straight through in blocks; strided views
/// (a transpose, a slice) are gathered from the part of their storage they span.
module ElementStream =
    /// Contiguous tensors are read this many bytes at a time (float32 reads straight into the chunk).
    let private blockBytes = 1 <<< 20

    /// The element strides in the order of the analysed shape (reversed for a transposed tensor).
    let private analysedStrides (tensor: CheckpointTensor) =
        if tensor.Transposed then Array.rev tensor.Bytes.Strides else tensor.Bytes.Strides

    /// The number of elements of `tensor`.
    let elementCount (tensor: CheckpointTensor) =
        try tensor.Shape |> Array.fold (fun n d -> Checked.(*) n (int64 (max d 0))) 1L
        with :? OverflowException -> Errors.artifactAt tensor.Bytes.File "tensor %s has a shape beyond any file" tensor.StoredKey

    /// How many bytes from `tensor.Bytes.Offset` the tensor's elements reach (0 for an empty
    /// tensor); `ArtifactException` naming the file and key for strides that do not fit its shape.
    let extent (tensor: CheckpointTensor) =
        let strides = analysedStrides tensor
        let fault detail = Errors.artifactAt tensor.Bytes.File "tensor %s: %s" tensor.StoredKey detail
        if strides.Length <> tensor.Shape.Length then
            fault (sprintf "%d strides for a shape of %d dimensions" strides.Length tensor.Shape.Length)
        if tensor.Shape |> Array.exists (fun d -> d < 0) || strides |> Array.exists (fun s -> s < 0L) then
            fault "a negative size or stride"
        if tensor.Bytes.Offset < 0L then fault "a negative storage offset"
        if tensor.Shape |> Array.contains 0 then 0L
        else
            try
                let last = Array.fold2 (fun acc (d: int) s -> Checked.(+) acc (Checked.(*) (int64 (d - 1)) s)) 0L tensor.Shape strides
                Checked.(*) (Checked.(+) last 1L) (int64 (ElementConversion.elementSize tensor.DType))
            with :? OverflowException -> fault "sizes and strides beyond any file"

    /// `ArtifactException` naming the file and key unless `tensor` lies inside a region of
    /// `regionLength` bytes and has no more elements than the region holds: a tensor of a
    /// checkpoint owns its elements, and the bound keeps a damaged shape from streaming for ever.
    let checkInside (regionName: string) (regionLength: int64) (tensor: CheckpointTensor) =
        let span = extent tensor
        let count = elementCount tensor
        if span > 0L && tensor.Bytes.Offset > regionLength - span then
            Errors.artifactAt tensor.Bytes.File "tensor %s needs bytes %d..%d of %s, which holds %d bytes"
                tensor.StoredKey tensor.Bytes.Offset (tensor.Bytes.Offset + span) regionName regionLength
        if count > regionLength / int64 (ElementConversion.elementSize tensor.DType) then
            Errors.artifactAt tensor.Bytes.File "tensor %s has %d elements but %s holds %d bytes (an expanded view? save a contiguous copy)"
                tensor.StoredKey count regionName regionLength

    let private isContiguous (shape: int[]) (strides: int64[]) =
        let mutable expected = 1L
        let mutable contiguous = true
        for d in shape.Length - 1 .. -1 .. 0 do
            if shape[d] <> 1 && strides[d] <> expected then contiguous <- false
            expected <- expected * int64 shape[d]
        contiguous

    /// Whether the tensor's elements lie one after another in row-major order of its analysed shape
    /// (not a strided view, not read transposed), so that any run of them is one read.
    let isStoredInOrder (tensor: CheckpointTensor) = isContiguous tensor.Shape (analysedStrides tensor)

    let private readExactly (stream: Stream) (tensor: CheckpointTensor) (buffer: Span<byte>) =
        try stream.ReadExactly buffer
        with :? EndOfStreamException -> Errors.artifactAt tensor.Bytes.File "the file ends inside tensor %s" tensor.StoredKey

    let private streamContiguous (stream: Stream) (tensor: CheckpointTensor) (count: int64) (sink: ChunkSink) =
        let size = ElementConversion.elementSize tensor.DType
        let direct = tensor.DType = StoredDType.Float32 && BitConverter.IsLittleEndian
        let buffer = if direct then null else ArrayPool<byte>.Shared.Rent blockBytes
        try
            let mutable remaining = count
            while remaining > 0L do
                let free = sink.Free
                let n = int (min remaining (int64 (min free.Length (blockBytes / size))))
                if direct then readExactly stream tensor (MemoryMarshal.AsBytes(free.Slice(0, n)))
                else
                    let bytes = Span<byte>(buffer, 0, n * size)
                    readExactly stream tensor bytes
                    ElementConversion.convert tensor.DType (Span<byte>.op_Implicit bytes) free
                sink.Advance n
                remaining <- remaining - int64 n
        finally
            if not (isNull buffer) then ArrayPool<byte>.Shared.Return buffer

    /// Converts `destination.Length` elements of `bytes`, the first at element `first`, each
    /// `stride` elements after the one before.
    let private gatherRun (dtype: StoredDType) (bytes: byte[]) (first: int64) (stride: int64) (destination: Span<float32>) =
        let first, stride = int first, int stride
        match dtype with
        | StoredDType.Float32 when BitConverter.IsLittleEndian ->
            let source = MemoryMarshal.Cast<byte, float32>(ReadOnlySpan bytes)
            for k in 0 .. destination.Length - 1 do
                destination[k] <- source[first + k * stride]
        | StoredDType.BFloat16 when BitConverter.IsLittleEndian ->
            let source = MemoryMarshal.Cast<byte, uint16>(ReadOnlySpan bytes)
            for k in 0 .. destination.Length - 1 do
                destination[k] <- BitConverter.UInt32BitsToSingle(uint32 source[first + k * stride] <<< 16)
        | _ ->
            let size = ElementConversion.elementSize dtype
            for k in 0 .. destination.Length - 1 do
                destination[k] <- ElementConversion.convertOne dtype (ReadOnlySpan<byte>(bytes, (first + k * stride) * size, size))

    let private streamGathered (stream: Stream) (tensor: CheckpointTensor) (span: int64) (count: int64) (sink: ChunkSink) =
        // A strided view is read as the run of storage it spans, then gathered: bounded by the
        // storage, which a view cannot exceed.
        if span > int64 Array.MaxLength then
            Errors.artifactAt tensor.Bytes.File "tensor %s is a strided view spanning %d bytes of its storage, more than can be gathered in memory"
                tensor.StoredKey span
        let bytes = GC.AllocateUninitializedArray<byte>(int span)
        readExactly stream tensor (Span<byte> bytes)
        let shape = tensor.Shape
        let strides = analysedStrides tensor
        let rank = shape.Length
        let last = rank - 1
        let index = Array.zeroCreate<int> rank
        let mutable offset = 0L
        let mutable remaining = count
        while remaining > 0L do
            let free = sink.Free
            let n = int (min remaining (int64 free.Length))
            let mutable j = 0
            while j < n do
                // A run along the last dimension at a fixed stride, then the odometer of the others.
                let run = min (n - j) (shape[last] - index[last])
                gatherRun tensor.DType bytes offset strides[last] (free.Slice(j, run))
                j <- j + run
                offset <- offset + int64 run * strides[last]
                index[last] <- index[last] + run
                let mutable d = last
                while d >= 0 && index[d] = shape[d] do
                    offset <- offset - int64 shape[d] * strides[d]
                    index[d] <- 0
                    d <- d - 1
                    if d >= 0 then
                        index[d] <- index[d] + 1
                        offset <- offset + strides[d]
            sink.Advance n
            remaining <- remaining - int64 n

    /// Streams `tensor`'s elements as float32 into `sink`, in row-major order of `tensor.Shape`
    /// (the transpose of the stored tensor when `Transposed`). `stream` is seekable and holds the
    /// region `tensor.Bytes.Offset` is relative to at `regionStart`, `regionLength` bytes long (a
    /// zip entry; a whole file for offsets relative to the file). `ArtifactException` naming the
    /// file and key when the tensor reaches outside the region or the file ends early.
    let streamTensor (stream: Stream) (regionStart: int64) (regionLength: int64) (tensor: CheckpointTensor) (sink: ChunkSink) =
        checkInside (if isNull tensor.Bytes.Entry then "the file" else "storage entry " + tensor.Bytes.Entry) regionLength tensor
        let span = extent tensor
        if span > 0L then
            stream.Seek(regionStart + tensor.Bytes.Offset, SeekOrigin.Begin) |> ignore
            let count = elementCount tensor
            if isContiguous tensor.Shape (analysedStrides tensor) then streamContiguous stream tensor count sink
            else streamGathered stream tensor span count sink

/// Random access to a checkpoint's analysed values when every tensor is stored in order
/// (`ElementStream.isStoredInOrder`): flat position p of the directory order is one positioned read
/// from its tensor's file. `regions` gives, per tensor, where its offsets count from and how many
/// bytes that region holds (a zip entry, or a whole file); each tensor is checked to lie inside its
/// region as the streaming reader checks it. The files stay open until `Dispose`.
[<Sealed>]
type StoredValues(tensors: CheckpointTensor[], regions: struct (int64 * int64 * string)[]) =
    inherit SnapshotValues()
    let starts = tensors |> Array.scan (fun at t -> at + ElementStream.elementCount t) 0L
    let handles = Dictionary<string, Microsoft.Win32.SafeHandles.SafeFileHandle>()
    do
        try
            tensors |> Array.iteri (fun i t ->
                let struct (_, length, name) = regions[i]
                ElementStream.checkInside name length t
                if not (handles.ContainsKey t.Bytes.File) then
                    handles[t.Bytes.File] <-
                        try File.OpenHandle(t.Bytes.File, FileMode.Open, FileAccess.Read, FileShare.Read, FileOptions.RandomAccess)
                        with :? IOException | :? UnauthorizedAccessException as e -> Errors.artifactAt t.Bytes.File "cannot be read (%s)" e.Message)
        with _ ->
            for h in handles.Values do h.Dispose()
            reraise ()

    /// Fills `bytes` from `fileOffset` of tensor t's file.
    let readAt (t: int) (fileOffset: int64) (bytes: Span<byte>) =
        let handle = handles[tensors[t].Bytes.File]
        let mutable filled = 0
        while filled < bytes.Length do
            let n = RandomAccess.Read(handle, bytes.Slice filled, fileOffset + int64 filled)
            if n = 0 then Errors.artifactAt tensors[t].Bytes.File "the file ends inside tensor %s" tensors[t].StoredKey
            filled <- filled + n

    /// The tensor holding flat position `position`: the last whose start is at or before it.
    let tensorAt (position: int64) =
        let mutable lo = 0
        let mutable hi = tensors.Length - 1
        while lo < hi do
            let mid = (lo + hi + 1) / 2
            if starts[mid] <= position then lo <- mid else hi <- mid - 1
        lo

    override _.Read(offset: int, destination: float32[], start: int, count: int) =
        let mutable position = int64 offset
        let mutable written = 0
        let mutable t = tensorAt position
        while written < count do
            if t >= tensors.Length then invalidArg "count" "reads past the checkpoint's last value"
            let n = int (min (int64 (count - written)) (starts[t + 1] - position))
            if n > 0 then
                let tensor = tensors[t]
                let size = ElementConversion.elementSize tensor.DType
                let struct (regionStart, _, _) = regions[t]
                let fileOffset = regionStart + tensor.Bytes.Offset + (position - starts[t]) * int64 size
                let target = Span<float32>(destination, start + written, n)
                if tensor.DType = StoredDType.Float32 && BitConverter.IsLittleEndian then readAt t fileOffset (MemoryMarshal.AsBytes target)
                else
                    let bytes = ArrayPool<byte>.Shared.Rent(n * size)
                    try
                        let source = Span<byte>(bytes, 0, n * size)
                        readAt t fileOffset source
                        ElementConversion.convert tensor.DType (Span<byte>.op_Implicit source) target
                    finally ArrayPool<byte>.Shared.Return bytes
                written <- written + n
                position <- position + int64 n
            t <- t + 1

    override _.Files = handles.Count

    override _.Dispose() =
        for h in handles.Values do h.Dispose()

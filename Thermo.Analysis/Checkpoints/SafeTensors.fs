namespace Thermo.Analysis.Checkpoints

open System
open System.Buffers.Binary
open System.IO
open System.Runtime.InteropServices
open System.Text
open System.Text.Json
open Thermo.Analysis

/// One tensor entry of a safetensors header, validated.
type internal SafeTensorEntry =
    { StoredKey: string
      DTypeName: string
      Shape: int[]
      Numel: int64
      /// Offsets relative to the start of the data buffer.
      Begin: int64
      End: int64 }

/// Reading `.safetensors` files: the header alone locates every tensor; values are streamed later in
/// bounded memory.
module SafeTensors =
    let private failAt path fmt = Errors.artifactAt path fmt
    let private failNaming path fmt = Errors.artifactNaming path fmt

    let private shapeText (shape: int[]) = "[" + String.Join(", ", shape) + "]"

    /// A header larger than this is corrupt rather than a model: the format's own reader refuses
    /// headers above 100 MB, and reading it whole must stay cheap.
    let private maxHeaderLength = 100L * 1024L * 1024L

    /// Bytes per element of every dtype the format names, and whether Thermo converts it. Known
    /// integer and unsupported floating types are dropped with a reason; an unknown name is an error.
    let private dtypeInfo (name: string) : (int * StoredDType option) option =
        match name with
        | "F32" -> Some(4, Some StoredDType.Float32)
        | "F16" -> Some(2, Some StoredDType.Float16)
        | "BF16" -> Some(2, Some StoredDType.BFloat16)
        | "F64" -> Some(8, Some StoredDType.Float64)
        | "BOOL" | "U8" | "I8" | "F8_E5M2" | "F8_E4M3" | "F8_E8M0" -> Some(1, None)
        | "I16" | "U16" -> Some(2, None)
        | "I32" | "U32" -> Some(4, None)
        | "I64" | "U64" | "C64" -> Some(8, None)
        | _ -> None

    /// Parses and validates one tensor entry of the header (shape, dtype, offsets inside the buffer,
    /// byte length matching the shape). Overlaps are checked over all entries afterwards.
    let private parseEntry (path: string) (dataLength: int64) (key: string) (value: JsonElement) =
        if value.ValueKind <> JsonValueKind.Object then failAt path "header entry '%s' is not an object" key
        let field (name: string) =
            match value.TryGetProperty name with
            | true, v -> v
            | _ -> failAt path "header entry '%s' has no '%s'" key name
        let dtype = field "dtype"
        if dtype.ValueKind <> JsonValueKind.String then failAt path "'%s' has a dtype that is not a string" key
        let dtypeName = dtype.GetString()
        let size =
            match dtypeInfo dtypeName with
            | Some(size, _) -> size
            | None -> failAt path "'%s' has unknown dtype '%s'" key dtypeName
        let shapeJson = field "shape"
        if shapeJson.ValueKind <> JsonValueKind.Array then failAt path "'%s' has a shape that is not an array" key
        if shapeJson.GetArrayLength() > 64 then failAt path "'%s' has %d dimensions" key (shapeJson.GetArrayLength())
        let shape =
            [| for d in shapeJson.EnumerateArray() ->
                   match d.ValueKind, (if d.ValueKind = JsonValueKind.Number then d.TryGetInt32() else (false, 0)) with
                   | JsonValueKind.Number, (true, n) when n >= 0 -> n
                   | _ -> failAt path "'%s' has shape dimension %s (expected a non-negative 32-bit integer)" key (d.GetRawText()) |]
        // numel × size must fit in an int64 whatever the shape: stop as soon as it exceeds the buffer
        let mutable numel = 1L
        for d in shape do
            if numel > 0L && int64 d > Int64.MaxValue / numel then
                failAt path "'%s' has shape %s whose element count overflows" key (shapeText shape)
            numel <- numel * int64 d
        if numel > Int64.MaxValue / int64 size then failAt path "'%s' has shape %s whose byte length overflows" key (shapeText shape)
        let offsets = field "data_offsets"
        if offsets.ValueKind <> JsonValueKind.Array || offsets.GetArrayLength() <> 2 then
            failAt path "'%s' has data_offsets that are not [begin, end]" key
        let offset (i: int) =
            let o = offsets[i]
            match o.ValueKind, (if o.ValueKind = JsonValueKind.Number then o.TryGetInt64() else (false, 0L)) with
            | JsonValueKind.Number, (true, n) when n >= 0L -> n
            | _ -> failAt path "'%s' has data offset %s (expected a non-negative integer)" key (o.GetRawText())
        let b, e = offset 0, offset 1
        if b > e || e > dataLength then
            failAt path "'%s' has data_offsets [%d, %d] outside the data buffer of %d bytes" key b e dataLength
        if e - b <> numel * int64 size then
            failAt path "'%s' spans %d bytes but shape %s of %s needs %d" key (e - b) (shapeText shape) dtypeName (numel * int64 size)
        { StoredKey = key; DTypeName = dtypeName; Shape = shape; Numel = numel; Begin = b; End = e }

    /// Reads the header of a safetensors file: the validated entries (in header order), the byte
    /// offset of the data buffer in the file.
    let internal readHeader (path: string) : SafeTensorEntry[] * int64 =
        CheckpointNames.checkRegularFile path
        let headerBytes, fileLength =
            try
                use stream = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.Read, 1, FileOptions.None)
                let fileLength = stream.Length
                if fileLength < 8L then failAt path "%d bytes, too short for a safetensors header (truncated)" fileLength
                let lengthBytes = Array.zeroCreate<byte> 8
                stream.ReadExactly(lengthBytes, 0, 8)
                let n = BinaryPrimitives.ReadUInt64LittleEndian(ReadOnlySpan lengthBytes)
                if n > uint64 maxHeaderLength then
                    failAt path "header length %d is absurd (over %d bytes): not a safetensors file, or corrupt" n maxHeaderLength
                if int64 n > fileLength - 8L then
                    failAt path "header length %d is larger than the file (%d bytes): truncated or not a safetensors file" n fileLength
                let header = Array.zeroCreate<byte> (int n)
                stream.ReadExactly(header, 0, header.Length)
                header, fileLength
            with
            | ArtifactException _ -> reraise ()
            | :? EndOfStreamException -> failAt path "truncated while reading the header"
            | :? IOException | :? UnauthorizedAccessException as e -> failAt path "cannot be read (%s)" e.Message
        let dataStart = 8L + int64 headerBytes.Length
        let dataLength = fileLength - dataStart
        // the JSON reader checks the UTF-8 of a string only when it is read: check it all up front
        try UTF8Encoding(false, true).GetCharCount headerBytes |> ignore
        with :? DecoderFallbackException -> failAt path "header is not JSON (invalid UTF-8)"
        let document =
            try JsonDocument.Parse(ReadOnlyMemory headerBytes, JsonDocumentOptions(MaxDepth = 16))
            with :? JsonException as e -> failAt path "header is not JSON (%s)" e.Message
        use document = document
        if document.RootElement.ValueKind <> JsonValueKind.Object then
            failAt path "header is not a JSON object"
        let seen = Collections.Generic.HashSet<string>()
        let entries =
            try
                [| for property in document.RootElement.EnumerateObject() do
                       if not (seen.Add property.Name) then failAt path "header names '%s' twice" property.Name
                       if property.Name <> "__metadata__" then
                           parseEntry path dataLength property.Name property.Value |]
            with :? InvalidOperationException as e -> failAt path "header is not valid JSON text (%s)" e.Message
        // tensors must not share bytes: a corrupt header could otherwise alias one tensor as another
        let byStart = entries |> Array.filter (fun e -> e.End > e.Begin) |> Array.sortBy (fun e -> e.Begin, e.End)
        for i in 1 .. byStart.Length - 1 do
            let a, b = byStart[i - 1], byStart[i]
            if b.Begin < a.End then
                failAt path "tensors '%s' [%d, %d] and '%s' [%d, %d] overlap" a.StoredKey a.Begin a.End b.StoredKey b.Begin b.End
        entries, dataStart

    /// Row-major contiguous strides of `shape`, in elements.
    let private contiguousStrides (shape: int[]) =
        let strides = Array.zeroCreate<int64> shape.Length
        let mutable s = 1L
        for i in shape.Length - 1 .. -1 .. 0 do
            strides[i] <- s
            s <- s * int64 shape[i]
        strides

    /// Locates every tensor of a safetensors file from its header alone, without reading a value:
    /// floating tensors (F32, F16, BF16, F64) become `CheckpointTensor`s in header order; integer,
    /// boolean and 8-bit floating tensors, normalisation buffers and keys matching
    /// `options.Exclude` are dropped with their reason; a 2-D tensor of a layer matching
    /// `options.UnitsAlongDim1` is marked transposed. Raises `ArtifactException` naming the file (and
    /// the key) for anything that is not a well-formed safetensors file.
    [<CompiledName("Read")>]
    let read (options: CheckpointReadOptions) (path: string) : CheckpointContents =
        let entries, dataStart = readHeader path
        let located =
            entries |> Array.map (fun e ->
                let dtype = match dtypeInfo e.DTypeName with | Some(_, Some d) -> Ok d | _ -> Error e.DTypeName
                e.StoredKey, e.Shape, dtype, { File = path; Entry = null; Offset = dataStart + e.Begin; Strides = contiguousStrides e.Shape })
        let tensors, dropped = CheckpointNames.classify path options false located
        { Path = path
          Format = "safetensors"
          Tensors = tensors
          Dropped = dropped
          Epoch = None
          GlobalStep = None }

    /// Streams the values of `tensors` (as `read` located them, in array order, each in its analysis
    /// shape: a transposed tensor is emitted transposed) into chunks the caller supplies:
    /// `nextChunk ()` gives an array to fill, `filled chunk count` hands it back with `count` values
    /// (a chunk may hold the end of one tensor and the start of the next; only the last one is
    /// partly filled). Memory is one read buffer, plus a whole tensor for a transposed one. Raises
    /// `ArtifactException` naming the file and the key when the file no longer holds the bytes.
    [<CompiledName("StreamValues")>]
    let streamValues (tensors: CheckpointTensor[]) (nextChunk: unit -> float32[]) (filled: float32[] -> int -> unit) : unit =
        let sink = ChunkSink(nextChunk, filled)
        let mutable stream: FileStream = null
        try
            for t in tensors do
                if isNull stream || stream.Name <> Path.GetFullPath t.Bytes.File then
                    if not (isNull stream) then stream.Dispose()
                    stream <- null
                    if not (File.Exists t.Bytes.File) then failNaming t.Bytes.File "%s does not exist (reading '%s')" t.Bytes.File t.StoredKey
                    stream <-
                        try new FileStream(t.Bytes.File, FileMode.Open, FileAccess.Read, FileShare.Read, 1, FileOptions.SequentialScan)
                        with :? IOException | :? UnauthorizedAccessException as e -> failAt t.Bytes.File "cannot be read (%s)" e.Message
                ElementStream.streamTensor stream 0L stream.Length t sink
            sink.Flush()
        finally
            if not (isNull stream) then stream.Dispose()

/// A checkpoint split into shards by an index (`model.safetensors.index.json`,
/// `pytorch_model.bin.index.json`), read as one.
module ShardedCheckpoint =
    let private failAt path fmt = Errors.artifactAt path fmt
    let private failNaming path fmt = Errors.artifactNaming path fmt

    /// Reads the index json at `path` and each shard it names (with `readShard`, once per shard file,
    /// resolved beside the index) into one `CheckpointContents` whose tensors and dropped tensors
    /// follow the index's order (Format `safetensors-sharded` when every shard is a `.safetensors`
    /// file, else `torch-sharded`). A tensor of a shard that the index does not list is dropped
    /// with that reason. Raises `ArtifactException` for an index that is not JSON or has no
    /// `weight_map`, a shard that does not exist (naming it and a key it should hold), and a key
    /// absent from its shard.
    [<CompiledName("Read")>]
    let read (readShard: string -> CheckpointContents) (path: string) : CheckpointContents =
        if not (File.Exists path) then failNaming path "%s does not exist" path
        let text =
            try File.ReadAllText path
            with :? IOException | :? UnauthorizedAccessException as e -> failAt path "cannot be read (%s)" e.Message
        let document =
            try JsonDocument.Parse text
            with :? JsonException as e -> failAt path "not JSON (%s)" e.Message
        use document = document
        let map =
            match document.RootElement.ValueKind with
            | JsonValueKind.Object ->
                match document.RootElement.TryGetProperty "weight_map" with
                | true, m when m.ValueKind = JsonValueKind.Object -> m
                | _ -> failAt path "a sharded index needs a 'weight_map' object"
            | _ -> failAt path "not a JSON object"
        let keys =
            [| for p in map.EnumerateObject() ->
                   if p.Value.ValueKind <> JsonValueKind.String || String.IsNullOrWhiteSpace(p.Value.GetString()) then
                       failAt path "weight_map maps '%s' to %s, not a shard file name" p.Name (p.Value.GetRawText())
                   p.Name, p.Value.GetString() |]
        if keys.Length = 0 then failAt path "the weight_map is empty"
        if (keys |> Array.map fst |> Array.distinct).Length <> keys.Length then failAt path "weight_map names a key twice"
        let directory = Path.GetDirectoryName(Path.GetFullPath path)
        let shardNames = keys |> Array.map snd |> Array.distinct
        let shards =
            shardNames
            |> Array.map (fun name ->
                // A shard is a file beside its index, named by name alone: no path that leaves the
                // directory, and no other index (which would be read as an index in turn).
                if name <> Path.GetFileName name || name = ".." || name = "." || Path.IsPathRooted name || name.Contains '\\' then
                    failAt path "weight_map names the shard '%s', which is not a file name beside the index" name
                if name.EndsWith(".json", StringComparison.OrdinalIgnoreCase) then
                    failAt path "weight_map names the shard '%s', another index; shards are weight files" name
                let shardPath = Path.Combine(directory, name)
                if not (File.Exists shardPath) then
                    let key = keys |> Array.find (fun (_, s) -> s = name) |> fst
                    failAt path "shard %s (holding '%s') does not exist" name key
                name, readShard shardPath)
            |> dict
        // keys looked up by name: a large model's index lists thousands
        let found =
            shardNames
            |> Array.map (fun name ->
                let shard = shards[name]
                name, (shard.Tensors |> Array.map (fun t -> t.StoredKey, t) |> Array.distinctBy fst |> dict,
                       shard.Dropped |> Array.map (fun d -> d.StoredKey, d) |> Array.distinctBy fst |> dict))
            |> dict
        let tensors = ResizeArray()
        let dropped = ResizeArray()
        for key, shardName in keys do
            let shardTensors, shardDropped = found[shardName]
            match shardTensors.TryGetValue key with
            | true, t -> tensors.Add t
            | _ ->
                match shardDropped.TryGetValue key with
                | true, d -> dropped.Add d
                | _ -> failAt path "'%s' is listed in the index but absent from shard %s" key shardName
        let listed = keys |> Array.map fst |> Collections.Generic.HashSet
        for name in shardNames do
            let shard = shards[name]
            for t in shard.Tensors do
                if not (listed.Contains t.StoredKey) then
                    dropped.Add { StoredKey = t.StoredKey; Reason = sprintf "in shard %s but not in the index" name }
        let allSafetensors = shardNames |> Array.forall (fun n -> n.EndsWith(".safetensors", StringComparison.OrdinalIgnoreCase))
        { Path = path
          Format = (if allSafetensors then "safetensors-sharded" else "torch-sharded")
          Tensors = tensors.ToArray()
          Dropped = dropped.ToArray()
          Epoch = shardNames |> Array.tryPick (fun n -> shards[n].Epoch)
          GlobalStep = shardNames |> Array.tryPick (fun n -> shards[n].GlobalStep) }

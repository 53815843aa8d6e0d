namespace Thermo.Analysis.Checkpoints

open System
open System.IO
open Thermo.Analysis

/// From a checkpoint's state-dict keys to Thermo's layers and tensors, shared by every checkpoint
/// format: which keys are analysed, under which names, and why the others are dropped.
module CheckpointNames =
    /// Prefixes that wrapping a model adds to every key: DistributedDataParallel's `module.` and
    /// torch.compile's `_orig_mod.`; they can nest, in either order.
    let private wrapperPrefixes = [| "module."; "_orig_mod." |]

    /// Wrapper prefixes stripped from every key, repeatedly: "module." (DistributedDataParallel),
    /// "_orig_mod." (torch.compile).
    let rec stripWrappers (key: string) =
        match wrapperPrefixes |> Array.tryFind (fun p -> key.StartsWith(p, StringComparison.Ordinal) && key.Length > p.Length) with
        | Some prefix -> stripWrappers (key.Substring prefix.Length)
        | None -> key

    /// (layer, tensor): a key without its trailing ".weight"/".bias" → (rest, "weight"/"bias");
    /// any other key is a layer of its own → (key, "weight").
    let layerAndTensor (key: string) =
        let split (suffix: string) =
            if key.EndsWith("." + suffix, StringComparison.Ordinal) && key.Length > suffix.Length + 1 then
                Some(key.Substring(0, key.Length - suffix.Length - 1), suffix)
            else None
        split "weight" |> Option.orElse (split "bias") |> Option.defaultValue (key, "weight")

    /// The last names of well-known buffers: state a module keeps that no optimiser step moves.
    /// Batch norm's running statistics and step counter; attention masks and rotary-embedding caches
    /// of common transformer implementations, which are constants of the architecture.
    let private bufferNames =
        set [ "running_mean"; "running_var"; "num_batches_tracked"
              "inv_freq"; "cos_cached"; "sin_cached"; "masked_bias"; "position_ids"; "token_type_ids" ]

    /// Buffers that are not parameters: keys whose last name is batch norm's running_mean,
    /// running_var or num_batches_tracked, or a transformer constant (rotary `inv_freq`,
    /// `cos_cached`, `sin_cached`; GPT-2's `masked_bias`; BERT's `position_ids`, `token_type_ids`).
    let isKnownBuffer (key: string) =
        let last = match key.LastIndexOf '.' with -1 -> key | i -> key.Substring(i + 1)
        bufferNames.Contains last

    /// Glob match of the whole text: `*` is any run of characters (none included), `?` any one.
    let globMatches (pattern: string) (text: string) =
        // Iterative matching with one backtrack point: linear in practice, never exponential.
        let mutable p = 0
        let mutable t = 0
        let mutable star = -1
        let mutable mark = 0
        let mutable failed = false
        while not failed && t < text.Length do
            if p < pattern.Length && (pattern[p] = '?' || pattern[p] = text[t]) then
                p <- p + 1
                t <- t + 1
            elif p < pattern.Length && pattern[p] = '*' then
                star <- p
                mark <- t
                p <- p + 1
            elif star >= 0 then
                p <- star + 1
                mark <- mark + 1
                t <- mark
            else failed <- true
        while not failed && p < pattern.Length && pattern[p] = '*' do
            p <- p + 1
        not failed && p = pattern.Length

    /// Why a tensor of a dtype Thermo does not read is dropped: integers and booleans are not
    /// floating; complex and 8-bit floating types are, but are not read.
    let private unreadDTypeReason (name: string) =
        // torch's names (complex64, float8_e4m3fn) and safetensors' (C64, F8_E4M3)
        if name.StartsWith("complex", StringComparison.Ordinal) || name.StartsWith("float8", StringComparison.Ordinal)
           || name.StartsWith("C", StringComparison.Ordinal) || name.StartsWith("F8", StringComparison.Ordinal) then
            sprintf "unsupported floating type (%s)" name
        else sprintf "not floating (%s)" name

    /// Refuses, naming it, what is not a regular file with content: a link to nowhere, a device or a
    /// pipe (which report no length, and whose opening may wait for ever), an empty file.
    let checkRegularFile (path: string) =
        let info = FileInfo path
        let target =
            if isNull info.LinkTarget then info :> FileSystemInfo
            else try info.ResolveLinkTarget true with :? IOException -> null
        match target with
        | :? FileInfo as file when file.Exists && file.Length > 0L
                                   && not (file.FullName.StartsWith("/dev/", StringComparison.Ordinal) || file.FullName.StartsWith("/proc/", StringComparison.Ordinal)) -> ()
        | _ when not info.Exists && isNull info.LinkTarget -> Errors.artifactAt path "does not exist"
        | _ -> Errors.artifactAt path "not a regular file with content (an empty file, a link to nowhere, a device or a pipe)"

    /// Builds the analysed tensors and the dropped ones, in the given order, from each entry's
    /// (storedKey, stored shape, dtype (Error: the name of a dtype that is not read), bytes):
    /// wrapper prefixes stripped; Lightning's "model." stripped when `stripModelPrefix`; known
    /// buffers, unread dtypes and keys matching `options.Exclude` dropped with their reason; a
    /// 2-D tensor of a layer matching `options.UnitsAlongDim1` read transposed (its shape
    /// reversed); a 1-D tensor of such a layer (its bias) is read as it is, and any other rank is
    /// refused (`ArtifactException` naming `path` and the key).
    let classify (path: string) (options: CheckpointReadOptions) (stripModelPrefix: bool)
                 (entries: (string * int[] * Result<StoredDType, string> * TensorBytes)[]) =
        let kept = ResizeArray<CheckpointTensor>()
        let dropped = ResizeArray<DroppedTensor>()
        for storedKey, shape, dtype, bytes in entries do
            let unwrapped = stripWrappers storedKey
            let key =
                if stripModelPrefix && unwrapped.StartsWith("model.", StringComparison.Ordinal) then unwrapped.Substring 6
                else unwrapped
            let drop reason = dropped.Add { StoredKey = storedKey; Reason = reason }
            match dtype with
            | _ when isKnownBuffer key -> drop "buffer, not a weight"
            | Error name -> drop (unreadDTypeReason name)
            | Ok _ when options.Exclude |> Array.exists (fun p -> globMatches p key) ->
                drop (sprintf "excluded by pattern '%s'" (options.Exclude |> Array.find (fun p -> globMatches p key)))
            | Ok dtype ->
                let layer, tensor = layerAndTensor key
                let unitsAlongDim1 = options.UnitsAlongDim1 |> Array.exists (fun p -> globMatches p layer)
                // A 1-D tensor (the layer's bias) has its units along its only dimension either way.
                if unitsAlongDim1 && shape.Length <> 2 && shape.Length <> 1 then
                    Errors.artifactAt path "%s has shape [%s] but its layer %s is read with units along dim 1, which needs a 2-D tensor"
                        storedKey (String.Join(", ", shape)) layer
                let transposed = unitsAlongDim1 && shape.Length = 2
                kept.Add
                    { Layer = layer
                      Tensor = tensor
                      Key = key
                      StoredKey = storedKey
                      Shape = (if transposed then Array.rev shape else shape)
                      DType = dtype
                      Transposed = transposed
                      Bytes = bytes }
        kept.ToArray(), dropped.ToArray()


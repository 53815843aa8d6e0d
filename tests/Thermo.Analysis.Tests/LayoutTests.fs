/// The layout of Thermo.Analysis that docs/ARCHITECTURE.md states, read from its project file and
/// sources: Errors.fs, then the folders in dependency order, none revisited, then CSharp.fs; each
/// folder one namespace.
module Thermo.Analysis.Tests.LayoutTests

open System
open System.IO
open System.Xml.Linq
open Expecto
open Thermo.Analysis.Tests.Generators

/// The groups of the compile order: a file at the project's root, or a folder.
let private groups = [ "Errors.fs"; "Format"; "Run"; "Physics"; "Statistics"; "Engine"; "Checkpoints"; "CSharp.fs" ]

let private projectDirectory = Path.Combine(repositoryRoot, "Thermo.Analysis")

/// The project's Compile items, in compile order.
let private compiled () =
    XDocument.Load(Path.Combine(projectDirectory, "Thermo.Analysis.fsproj")).Descendants(XName.Get "Compile")
    |> Seq.map (fun e -> e.Attribute(XName.Get "Include").Value.Replace('\\', '/'))
    |> Seq.toList

/// A compiled file's group: its folder, or its own name at the project's root.
let private groupOf (file: string) =
    match file.Split('/') with
    | [| name |] -> name
    | parts -> parts[0]

/// The namespace a compiled file declares: its folder's, or Thermo.Analysis at the root.
let private expectedNamespace (file: string) =
    match file.Split('/') with
    | [| _ |] -> "Thermo.Analysis"
    | parts -> "Thermo.Analysis." + parts[0]

/// What is wrong with the compile order of `files`, if anything: its groups, a run of files each,
/// must be `groups` exactly, in that order, none revisited.
let private orderFault (files: string list) =
    let found =
        files
        |> List.map groupOf
        |> List.fold (fun runs group -> match runs with last :: _ when last = group -> runs | _ -> group :: runs) []
        |> List.rev
    if found = groups then None
    else Some(sprintf "the compile order runs %s; it must run %s, each folder once" (String.concat " → " found) (String.concat " → " groups))

/// What is wrong with the namespace declarations of `file` (its text `text`), if anything: it must
/// declare its folder's namespace, and no other.
let private namespaceFault (file: string) (text: string) =
    let expected = expectedNamespace file
    let declared =
        text.Split('\n')
        |> Array.map (fun line -> line.TrimEnd('\r'))
        |> Array.filter (fun line -> line.StartsWith("namespace ", StringComparison.Ordinal))
        |> Array.map (fun line -> line.Substring("namespace ".Length).Replace("rec ", "").Trim())
    if declared.Length = 0 then Some(sprintf "%s declares no namespace; it must declare %s" file expected)
    elif declared |> Array.exists ((<>) expected) then
        Some(sprintf "%s declares namespace %s; it must declare %s" file (String.Join(", ", Array.distinct declared)) expected)
    else None

[<Tests>]
let tests =
    testList "layout of Thermo.Analysis" [
        testCase "the compile order runs Errors.fs, the folders in dependency order, CSharp.fs, no folder revisited" <| fun () ->
            orderFault (compiled ()) |> Option.iter failtest

        testCase "each compiled file declares its folder's namespace" <| fun () ->
            let faults =
                compiled () |> List.choose (fun file -> namespaceFault file (File.ReadAllText(Path.Combine(projectDirectory, file))))
            Expect.isEmpty faults (String.concat "; " faults)

        testCase "the checks refuse a folder revisited, out of turn or missing, and another namespace" <| fun () ->
            let good =
                [ "Errors.fs"; "Format/A.fs"; "Format/B.fs"; "Run/C.fs"; "Physics/D.fs"; "Statistics/E.fs"; "Engine/F.fs"
                  "Checkpoints/G.fs"; "CSharp.fs" ]
            Expect.isNone (orderFault good) "the stated order"
            let swap i j (files: string list) = files |> List.mapi (fun k f -> if k = i then files[j] elif k = j then files[i] else f)
            Expect.isSome (orderFault (swap 2 3 good)) "Format revisited after Run"
            Expect.isSome (orderFault (swap 1 4 good)) "Physics before Format"
            Expect.isSome (orderFault (good |> List.filter ((<>) "Statistics/E.fs"))) "a folder missing"
            Expect.isSome (orderFault (good @ [ "Extra.fs" ])) "a root file after CSharp.fs"
            Expect.isNone (namespaceFault "Run/C.fs" "namespace Thermo.Analysis.Run\n\nmodule C =\n    let x = 1\n") "its folder's"
            Expect.isNone (namespaceFault "CSharp.fs" "// face\nnamespace Thermo.Analysis\r\n") "the root's"
            Expect.isSome (namespaceFault "Run/C.fs" "namespace Thermo.Analysis\n") "the root's in a folder"
            Expect.isSome (namespaceFault "Run/C.fs" "namespace Thermo.Analysis.Run\nnamespace Thermo.Analysis.Engine\n") "a second one"
            Expect.isSome (namespaceFault "Run/C.fs" "module Thermo.Analysis.Run.C\n") "none"
    ]

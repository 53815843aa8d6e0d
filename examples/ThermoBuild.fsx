// Loads this checkout's build of Thermo's analysis library into F# interactive: `#load "ThermoBuild.fsx"`
// at the top of an example. Build once first (`dotnet fsi build.fsx build`).
#r "../Thermo.Cli/bin/Release/net10.0/Apache.Arrow.dll"
#r "../Thermo.Cli/bin/Release/net10.0/ParquetSharp.dll"
#r "../Thermo.Cli/bin/Release/net10.0/MathNet.Numerics.dll"
#r "../Thermo.Cli/bin/Release/net10.0/Thermo.Analysis.dll"

module ThermoBuild =
    open System.IO
    open System.Runtime.InteropServices

    // F# interactive does not probe a build output's runtimes/ folder for native libraries.
    let private bin = Path.Combine(__SOURCE_DIRECTORY__, "..", "Thermo.Cli", "bin", "Release", "net10.0")
    NativeLibrary.SetDllImportResolver(typeof<ParquetSharp.ParquetFileReader>.Assembly, fun name _ _ ->
        let path = Path.Combine(bin, "runtimes", RuntimeInformation.RuntimeIdentifier, "native", name + ".so")
        if File.Exists path then NativeLibrary.Load path else nativeint 0)

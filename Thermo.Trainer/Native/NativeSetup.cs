using TorchSharp;

namespace Thermo.Trainer.Native;

/// <summary>
/// What the bytes of a run depend on: this machine's CPU and the native kernels libtorch runs on it.
/// Recorded in run.json; two runs with the same seed give identical snapshots only when these agree.
/// </summary>
/// <param name="CpuModel">The CPU's model name (/proc/cpuinfo).</param>
/// <param name="CpuFeatures">The SIMD extensions the CPU reports that libtorch's kernels dispatch on.</param>
/// <param name="AtenCapability">The instruction set ATen's own vectorised kernels use (at::get_cpu_capability).</param>
/// <param name="Convolutions">The kernels of the convolutions: onednn-aligned, aten or onednn (<see cref="ConvolutionKernels"/>).</param>
/// <param name="OneDnnVersion">oneDNN's version inside libtorch.</param>
/// <param name="LibTorchVersion">libtorch's version.</param>
/// <param name="Threads">Intra-op threads.</param>
/// <param name="InteropThreads">Inter-op threads.</param>
/// <param name="Environment">Environment variables that change which kernels run (ONEDNN_*, ATEN_CPU_CAPABILITY, OMP_*, MKL_*), as NAME=value.</param>
public sealed record NativeStack(
    string CpuModel,
    string CpuFeatures,
    string AtenCapability,
    string Convolutions,
    string OneDnnVersion,
    string LibTorchVersion,
    int Threads,
    int InteropThreads,
    string[] Environment)
{
    /// <summary>Whether a run's bytes computed on <paramref name="other"/> would be the ones computed here
    /// (everything but the environment listing, which only explains a difference).</summary>
    public bool ComputesLike(NativeStack other) =>
        (CpuModel, CpuFeatures, AtenCapability, Convolutions, OneDnnVersion, LibTorchVersion, Threads, InteropThreads) ==
        (other.CpuModel, other.CpuFeatures, other.AtenCapability, other.Convolutions, other.OneDnnVersion, other.LibTorchVersion, other.Threads, other.InteropThreads);
}

/// <summary>Which kernels compute the models' convolutions (named in run.json by <see cref="NativeSetup.Name"/>).</summary>
public enum ConvolutionKernels
{
    /// <summary>oneDNN, every convolution padded to whole 16-channel blocks (<see cref="BlockAlignedConvolution"/>): the fast default.</summary>
    OneDnnAligned,
    /// <summary>ATen's own kernels (im2col + BLAS): oneDNN switched off; slower, and the fallback when the aligned path fails the self-check.</summary>
    Aten,
    /// <summary>oneDNN on the layers as they are: computes wrongly on AVX-512 machines; only for showing the fault.</summary>
    OneDnn,
}

/// <summary>
/// The one place the native stack is configured, called by every entry point (the <c>thermo</c>
/// executable, the trainer, the test projects, the bench) before the first tensor operation.
///
/// Why: libtorch 2.10's oneDNN 3.7.1 computes convolutions with partial SIMD channel blocks wrongly on
/// AVX-512 (jit:avx512_core; less often on AVX2): the forward pass of a layer whose input channels are
/// 16 or more but not a multiple of 16, and the input gradient of a layer whose output channels are
/// not a multiple of 16, read the padding of oneDNN's blocked buffers, which nothing initialises; a run
/// then gets NaN, or silently different gradients, depending on what the allocator last left there
/// (docs/NATIVE.md has the bisection). Thermo therefore either pads every convolution to whole blocks
/// (<see cref="ConvolutionKernels.OneDnnAligned"/>, the default) or uses ATen's own kernels, and
/// verifies the choice with <see cref="NumericsSelfCheck"/> before training.
/// </summary>
public static class NativeSetup
{
    /// <summary>Environment variable choosing the convolution kernels: onednn-aligned (default), aten, onednn.</summary>
    public const string KernelsVariable = "THERMO_CONVOLUTIONS";

    static readonly object gate = new();
    static volatile bool applied;
    static volatile int kernels;
    static ConvolutionKernels configured;

    /// <summary>The kernel set's name as run.json, the CLI and <see cref="KernelsVariable"/> spell it.</summary>
    public static string Name(ConvolutionKernels k) => k switch
    {
        ConvolutionKernels.OneDnnAligned => "onednn-aligned",
        ConvolutionKernels.Aten => "aten",
        _ => "onednn",
    };

    /// <summary>Parses a kernel set's name; throws <see cref="ThermoException"/> naming <paramref name="source"/>.</summary>
    public static ConvolutionKernels Parse(string name, string source) =>
        name.Trim().ToLowerInvariant() switch
        {
            "onednn-aligned" or "aligned" => ConvolutionKernels.OneDnnAligned,
            "aten" => ConvolutionKernels.Aten,
            "onednn" => ConvolutionKernels.OneDnn,
            _ => throw new ThermoException($"{source}: unknown convolution kernels '{name}' (known: onednn-aligned, aten, onednn)"),
        };

    /// <summary>Configures libtorch once per process from <see cref="KernelsVariable"/> (later calls do nothing).</summary>
    public static void Apply()
    {
        lock (gate)
        {
            if (applied) return;
            NativeTorch.KeepFreedMemory();
            var requested = System.Environment.GetEnvironmentVariable(KernelsVariable);
            configured = string.IsNullOrWhiteSpace(requested) ? ConvolutionKernels.OneDnnAligned : Parse(requested, KernelsVariable);
            Use(configured);
        }
    }

    /// <summary>Switches this process's convolutions to <paramref name="choice"/> (a resumed or pruned
    /// run's own kernels, the trainer's fallback, the doctor's comparisons).</summary>
    public static void Use(ConvolutionKernels choice)
    {
        lock (gate)
        {
            NativeTorch.SetMkldnnEnabled(choice != ConvolutionKernels.Aten);
            // NNPACK (a third convolution library ATen may pick for some forward passes) does not
            // initialise on every CPU and then warns on every call; one set of kernels everywhere.
            NativeTorch.SetNnpackEnabled(false);
            if (!applied) configured = choice;
            kernels = (int)choice;
            applied = true;
        }
    }

    /// <summary>The convolution kernels in use in this process now (read on every convolution: no lock once applied).</summary>
    public static ConvolutionKernels Convolutions
    {
        get
        {
            if (!applied) Apply();
            return (ConvolutionKernels)kernels;
        }
    }

    /// <summary>Makes <paramref name="choice"/> the kernels new runs of this process start from (as
    /// <see cref="KernelsVariable"/> would have), and uses them now.</summary>
    public static void Configure(ConvolutionKernels choice)
    {
        lock (gate)
        {
            Apply();
            configured = choice;
            Use(choice);
        }
    }

    /// <summary>The kernels this process was configured with (<see cref="KernelsVariable"/>, else onednn-aligned):
    /// what every new run starts from, whatever an earlier run of the same process fell back to or resumed on.</summary>
    public static ConvolutionKernels Configured { get { Apply(); return configured; } }

    /// <summary>This process's native stack as configured now.</summary>
    public static NativeStack Describe()
    {
        Apply();
        var (model, features) = CpuInfo();
        var config = NativeTorch.BuildConfiguration();
        var version = System.Text.RegularExpressions.Regex.Match(config, @"TORCH_VERSION=([^,\s]+)") is { Success: true } m ? m.Groups[1].Value : "?";
        var environment = System.Environment.GetEnvironmentVariables().Keys.Cast<string>()
            .Where(k => k.StartsWith("ONEDNN_") || k.StartsWith("DNNL_") || k.StartsWith("MKL_") || k.StartsWith("OMP_") || k == "ATEN_CPU_CAPABILITY" || k == KernelsVariable)
            .Order().Select(k => $"{k}={System.Environment.GetEnvironmentVariable(k)}").ToArray();
        return new NativeStack(model, features, NativeTorch.AtenCpuCapability(), Name(Convolutions), NativeTorch.OneDnnVersion(), version,
            torch.get_num_threads(), torch.get_num_interop_threads(), environment);
    }

    static readonly string[] SimdFlags = ["sse4_2", "avx", "avx2", "fma", "avx512f", "avx512bw", "avx512vl", "avx512_vnni", "avx512_bf16", "amx_tile"];

    /// <summary>Model name and the SIMD flags of the first processor in /proc/cpuinfo.</summary>
    static (string Model, string Features) CpuInfo()
    {
        try
        {
            var lines = File.ReadLines("/proc/cpuinfo").TakeWhile(l => l.Length > 0).ToArray();
            string Field(string name) => lines.FirstOrDefault(l => l.StartsWith(name))?.Split(':', 2)[1].Trim() ?? "?";
            var flags = Field("flags").Split(' ');
            return ($"{Field("model name")} (family {Field("cpu family")}, model {Field("model")})",
                string.Join(" ", SimdFlags.Where(flags.Contains)));
        }
        catch (IOException) { return (System.Runtime.InteropServices.RuntimeInformation.ProcessArchitecture.ToString(), "?"); }
    }
}

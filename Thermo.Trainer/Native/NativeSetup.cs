using TorchSharp;

namespace Thermo.Trainer.Native;

/// <summary>
/// What the bytes of a run depend on: this machine's CPU and the native kernels libtorch runs on it.
/// Recorded in run.json; two runs with the same seed give identical snapshots only when these agree.
/// </summary>
/// <param name="CpuModel">The CPU's model name (/proc/cpuinfo).</param>
/// <param name="CpuFeatures">The SIMD extensions the CPU reports that libtorch's kernels dispatch on.</param>
/// <param name="AtenCapability">The instruction set ATen's own vectorised kernels use (at::get_cpu_capability).</param>
/// <param name="OneDnnConvolutions">Whether convolutions run on oneDNN (false: ATen's own im2col + BLAS kernels).</param>
/// <param name="OneDnnVersion">oneDNN's version inside libtorch.</param>
/// <param name="LibTorchVersion">libtorch's version.</param>
/// <param name="Threads">Intra-op threads.</param>
/// <param name="InteropThreads">Inter-op threads.</param>
/// <param name="Environment">Environment variables that change which kernels run (ONEDNN_*, ATEN_CPU_CAPABILITY, OMP_*, MKL_*), as NAME=value.</param>
public sealed record NativeStack(
    string CpuModel,
    string CpuFeatures,
    string AtenCapability,
    bool OneDnnConvolutions,
    string OneDnnVersion,
    string LibTorchVersion,
    int Threads,
    int InteropThreads,
    string[] Environment);

/// <summary>
/// The one place the native stack is configured, called by every entry point (the <c>thermo</c>
/// executable, the test projects, the bench) before the first tensor operation.
///
/// Why: libtorch 2.10's oneDNN 3.7.1 (jit:avx512_core and, less often, jit:avx2) corrupts the
/// backward pass of a convolution whose output channels are not a multiple of the SIMD channel block
/// (16 floats for AVX-512): it reads the padding of its blocked buffers, which is never initialised,
/// so a run gets NaN or silently different gradients depending on what the allocator last left there
/// (docs/NATIVE.md has the bisection). ATen's own convolution kernels compute the same functions
/// correctly; they are used unless <c>THERMO_ONEDNN=1</c> asks for oneDNN (for measuring the fault).
/// </summary>
public static class NativeSetup
{
    /// <summary>Environment variable that turns oneDNN convolutions back on (1/on/true).</summary>
    public const string OneDnnVariable = "THERMO_ONEDNN";

    static readonly object gate = new();
    static bool applied;
    static bool oneDnn;

    /// <summary>Whether <see cref="OneDnnVariable"/> asks for oneDNN convolutions.</summary>
    public static bool OneDnnRequested =>
        System.Environment.GetEnvironmentVariable(OneDnnVariable)?.Trim().ToLowerInvariant() is "1" or "on" or "true";

    /// <summary>Configures libtorch once per process (later calls do nothing).</summary>
    public static void Apply()
    {
        lock (gate)
        {
            if (applied) return;
            oneDnn = OneDnnRequested;
            NativeTorch.SetMkldnnEnabled(oneDnn);
            // NNPACK (a third convolution library ATen may pick for some forward passes) does not
            // initialise on every CPU and then warns on every call; one set of kernels everywhere.
            NativeTorch.SetNnpackEnabled(false);
            applied = true;
        }
    }

    /// <summary>Switches oneDNN convolutions on or off for this process (the self-check's tests and the doctor's comparison).</summary>
    public static void UseOneDnn(bool enabled)
    {
        lock (gate)
        {
            NativeTorch.SetMkldnnEnabled(enabled);
            oneDnn = enabled;
            applied = true;
        }
    }

    /// <summary>This process's native stack as configured now.</summary>
    public static NativeStack Describe()
    {
        Apply();
        var (model, features) = CpuInfo();
        var config = NativeTorch.BuildConfiguration();
        var version = System.Text.RegularExpressions.Regex.Match(config, @"TORCH_VERSION=([^,\s]+)") is { Success: true } m ? m.Groups[1].Value : "?";
        var environment = System.Environment.GetEnvironmentVariables().Keys.Cast<string>()
            .Where(k => k.StartsWith("ONEDNN_") || k.StartsWith("DNNL_") || k.StartsWith("MKL_") || k.StartsWith("OMP_") || k == "ATEN_CPU_CAPABILITY" || k == OneDnnVariable)
            .Order().Select(k => $"{k}={System.Environment.GetEnvironmentVariable(k)}").ToArray();
        return new NativeStack(model, features, NativeTorch.AtenCpuCapability(), oneDnn, NativeTorch.OneDnnVersion(), version,
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

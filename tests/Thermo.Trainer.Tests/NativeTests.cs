using TorchSharp;
using static TorchSharp.torch;

namespace Thermo.Trainer.Tests;

public class NativeTests
{
    [Fact]
    public void A_conv_forward_and_backward_pass_run_on_the_native_library()
    {
        // conv of an all-ones 1×1×5×5 image with a 3×3 kernel of ones: every output is 9, and
        // d(sum of outputs)/d(kernel weight) is the number of output positions, 3×3 = 9.
        using var x = ones(1, 1, 5, 5);
        using var w = ones(1, 1, 3, 3).requires_grad_();
        using var y = nn.functional.conv2d(x, w);
        Assert.Equal([1L, 1, 3, 3], y.shape);
        Assert.All(y.data<float>().ToArray(), v => Assert.Equal(9f, v));
        using var total = y.sum();
        total.backward();
        Assert.All(w.grad!.data<float>().ToArray(), g => Assert.Equal(9f, g));
    }
}

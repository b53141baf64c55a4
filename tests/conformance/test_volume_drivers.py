"""berth's volume drivers through the kit's volume suite (berth.testing.volume)."""

from berth.testing.volume import VolumeSuite


class TestVolume(VolumeSuite):
    pass

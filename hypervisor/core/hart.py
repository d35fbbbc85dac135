"""What the harts have, found once at boot from the device tree (all harts are taken to be alike)."""

hart_sstc: bool = False
hart_svnapot: bool = False
hart_aia: bool = False
hart_smstateen: bool = False


def hart_features_set(sstc: bool, svnapot: bool, aia: bool) -> None:
    global hart_sstc, hart_svnapot, hart_aia
    hart_sstc = sstc
    hart_svnapot = svnapot
    hart_aia = aia


def hart_stateen_set(smstateen: bool) -> None:
    global hart_smstateen
    hart_smstateen = smstateen


def hart_has_smstateen() -> bool:
    return hart_smstateen


def hart_has_sstc() -> bool:
    return hart_sstc


def hart_has_guest_files() -> bool:
    """Whether the harts have the AIA's supervisor-level CSRs (Ssaia: vsiselect, hgeie/hgeip guest files)."""
    return hart_aia

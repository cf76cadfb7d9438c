"""Named keys of the local keyring, made and listed through the API (``orch kms``).

With ``ORCH_OBJECTS__KEY_PROVIDER=aws-kms`` or ``vault`` the keys live in that service and are
made there: creating one here is refused naming the setting and the service's own command.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from orchestrator import tenancy
from orchestrator.errors import ValidationError
from orchestrator.objects.keys import KeyProvider, LocalKeyring
from orchestrator.objects.named_keys import DEFAULT_ALIAS, DEFAULT_KEY, NamedKey
from orchestrator.objects.providers import KeyChoice
from orchestrator.resources.kms import KmsKeyMetadata, ListKmsKeysResponse

if TYPE_CHECKING:
    from orchestrator.api.service import ControlPlane

_ELSEWHERE = {
    "aws-kms": "make keys in AWS KMS (aws kms create-key, aws kms create-alias)",
    "vault": "make keys in Vault's Transit engine (bao write -f transit/keys/NAME)",
}


def local_keyring(provider: KeyProvider) -> LocalKeyring | None:
    while isinstance(provider, KeyChoice):
        provider = provider.inner
    return provider if isinstance(provider, LocalKeyring) else None


class KmsKeys:
    def __init__(self, cp: ControlPlane) -> None:
        self.cp = cp

    @property
    def kind(self) -> str:
        return self.cp.settings.objects.key_provider

    def _keyring(self) -> LocalKeyring:
        ring = local_keyring(self.cp.key_provider)
        if ring is None:
            raise ValidationError(
                f"the key provider is {self.kind} (ORCH_OBJECTS__KEY_PROVIDER): "
                f"{_ELSEWHERE.get(self.kind, 'make keys in that service')} and name them in "
                "KmsKeyId",
                field="ORCH_OBJECTS__KEY_PROVIDER",
            )
        return ring

    def _arn(self, key_id: str, account: str = tenancy.ROOT) -> str:
        s = self.cp.settings
        return f"arn:aws:kms:{s.region}:{tenancy.arn_account(account, s.account_id)}:key/{key_id}"

    def _metadata(self, key: NamedKey) -> KmsKeyMetadata:
        alias = None if key.alias is None else f"alias/{key.alias}"
        return KmsKeyMetadata(
            KeyId=key.key_id,
            Arn=self._arn(key.key_id, key.account),
            Alias=alias,
            CreationDate=key.created,
        )

    def create(self, alias: str | None) -> KmsKeyMetadata:
        ring = self._keyring()
        if self.cp.settings.desired_state == "kubernetes":
            # The API pods' keyring is a read-only Secret that the pods of every job mount too.
            raise ValidationError(
                "on Kubernetes the keys are in the keyring Secret: make the key with "
                "`orch kms create-key` on a control plane whose ORCH_HOME holds the Secret's "
                "keyring.json, then add the keyring-named.json beside it to the Secret",
                field="Alias",
            )
        try:
            return self._metadata(ring.create_key(alias))
        except OSError as e:
            raise ValidationError(
                f"cannot write the named keys beside the keyring {ring.path}: {e}", field="Alias"
            ) from e

    def list(self) -> ListKmsKeysResponse:
        ring = self._keyring()
        default = KmsKeyMetadata(
            KeyId=DEFAULT_KEY,
            Arn=self._arn(DEFAULT_KEY),
            Alias=DEFAULT_ALIAS,
            Default=True,
        )
        keys = [default, *(self._metadata(k) for k in ring.list_keys())]
        return ListKmsKeysResponse(KeyProvider=self.kind, Keys=keys)

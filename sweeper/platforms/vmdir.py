"""VMware Directory (vmdir) on a vCenter: where the objects that must match VECS live, and the
tools that reach them (DESIGN "A vCenter keeps working only if these hold").

Facts only: distinguished names, attribute names, tool paths. The lab's directory
(sweeper/lab/vmdir.py) is built from the same names that sweeper reads and writes.
"""

from __future__ import annotations

from sweeper.platforms.vcsa import VMAFD_BIN

VMAFD_CLI = f"{VMAFD_BIN}/vmafd-cli"
VDCADMINTOOL = "/usr/lib/vmware-vmdir/bin/vdcadmintool"
LDAP_BIN = "/opt/likewise/bin"
LDAPSEARCH = f"{LDAP_BIN}/ldapsearch"
LDAPMODIFY = f"{LDAP_BIN}/ldapmodify"
LDAPDELETE = f"{LDAP_BIN}/ldapdelete"
LDAP_URI = "ldap://localhost:389"
NORMAL_STATE = "Normal"
"""What `vdcadmintool` option 6 must report before anything changes (`VmDir State is - Normal`)."""

LKUP_TRUST = "vmwLKUPEndpointSslTrust"
"""A Lookup Service endpoint's pinned certificate: base64 of its DER on one line."""
LKUP_ANCHOR = "vmwLKUPSslTrustAnchor"
"""A legacy (vmwLKUPServiceEndpoint) endpoint's pinned certificate, DER."""
LKUP_NODE = "vmwLKUPDeploymentNodeId"
"""A registration's owner: the machine ID of the vCenter that registered it."""


def domain_dn(domain: str) -> str:
    """vsphere.local -> dc=vsphere,dc=local"""
    return ",".join(f"dc={part}" for part in domain.split("."))


def admin_dn(domain: str) -> str:
    return f"cn=administrator,cn=users,{domain_dn(domain)}"


def bind_dn(login: str) -> str:
    """The DN an SSO login (administrator@vsphere.local) binds as."""
    user, _, domain = login.partition("@")
    return f"cn={user},cn=users,{domain_dn(domain or 'vsphere.local')}"


def service_principals_dn(domain: str) -> str:
    return f"cn=ServicePrincipals,{domain_dn(domain)}"


def service_principal_dn(domain: str, name: str) -> str:
    """A solution user: `name` is `<su>-<machineID>`."""
    return f"cn={name},{service_principals_dn(domain)}"


def tenant_dn(domain: str) -> str:
    return f"cn={domain},cn=Tenants,cn=IdentityManager,cn=Services,{domain_dn(domain)}"


def tenant_credential_dn(domain: str, index: int) -> str:
    """The STS signing certificate and key; the highest index is active."""
    return f"cn=TenantCredential-{index},{tenant_dn(domain)}"


def trusted_chains_dn(domain: str) -> str:
    return f"cn=TrustedCertificateChains,{tenant_dn(domain)}"


def trusted_chain_dn(domain: str, index: int) -> str:
    return f"cn=TrustedCertChain-{index},{trusted_chains_dn(domain)}"


def certificate_authorities_dn(domain: str) -> str:
    """Where `dir-cli trustedcert publish` keeps each root (cACertificate, certificateRevocationList)."""
    return f"cn=Certificate-Authorities,cn=Configuration,{domain_dn(domain)}"


def certificate_authority_dn(domain: str, cert_id: str) -> str:
    """A published root; `cert_id` is its subject key id in upper-case hex (dir-cli's CN(id))."""
    return f"cn={cert_id},{certificate_authorities_dn(domain)}"


def registrations_dn(domain: str, site: str = "Default-First-Site") -> str:
    return f"cn=ServiceRegistrations,cn=LookupService,cn={site},cn=Sites,cn=Configuration,{domain_dn(domain)}"


def registration_dn(domain: str, service_id: str) -> str:
    return f"cn={service_id},{registrations_dn(domain)}"


def containers(domain: str) -> list[str]:
    """Every container above the objects, parents first (what a fresh domain holds)."""
    base = domain_dn(domain)
    return [
        f"cn=users,{base}",
        service_principals_dn(domain),
        f"cn=Services,{base}",
        f"cn=IdentityManager,cn=Services,{base}",
        f"cn=Tenants,cn=IdentityManager,cn=Services,{base}",
        tenant_dn(domain),
        trusted_chains_dn(domain),
        f"cn=Configuration,{base}",
        certificate_authorities_dn(domain),
        f"cn=Sites,cn=Configuration,{base}",
        f"cn=Default-First-Site,cn=Sites,cn=Configuration,{base}",
        f"cn=LookupService,cn=Default-First-Site,cn=Sites,cn=Configuration,{base}",
        registrations_dn(domain),
    ]
